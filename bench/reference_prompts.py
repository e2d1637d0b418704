"""Judge prompts of the reference baseline: the structure and instructions of the LLaVA-CoT
reference code's judge (inference/demo/simple_inference.py), reworded. Pure text building."""

from __future__ import annotations

import re

STAGES = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")

# stage -> (what the judge is asked to decide, the reminder repeated after the responses)
JUDGE_CRITERIA = {
    "SUMMARY": (
        "Act as a judge and tell me which of the two texts below gives the better summary of "
        "how to go about solving the question. A good summary lays out the overall approach; "
        "it does not yet carry out the detailed analysis or write down formulas.",
        "Remember: the better summary outlines the approach rather than giving concrete "
        "analysis or formulas."),
    "CAPTION": (
        "Act as a judge and tell me which of the two texts below better describes the parts of "
        "the image that matter for the question, with fewer mistakes. The description should "
        "be as complete as it can be while staying accurate, naming as many details as "
        "possible instead of making only general remarks.",
        "Remember: the better caption is thorough and accurate, rich in details rather than "
        "general remarks."),
    "REASONING": (
        "Act as a judge and tell me which of the two texts below better explains the reasoning "
        "that solves the question, with fewer mistakes. First read the question carefully, then "
        "examine each response on its own and note where they differ; then weigh those "
        "differences to decide which response reasons more soundly, and say so clearly.",
        "First read the question carefully, then examine each response on its own and note "
        "where they differ; then weigh those differences to decide which reasons more soundly."),
    "CONCLUSION": (
        "Act as a judge and tell me which of the two texts below gives the more effective "
        "conclusion to the question. The conclusion has to agree with the reasoning given in "
        "the hint, and it must never decline to answer the question.",
        "Remember: the better conclusion agrees with the reasoning in the hint and never "
        "declines to answer."),
}

ANSWER_FORMAT = (
    " Keep strictly to the output format below and add no other words."
    '\n\nOutput format: "Since [reason], I choose response [1/2]."'
)
FIRST_WINS = "I choose response 1"

REASONING_CHECK = (
    "Act as a judge and decide whether the reasoning in the text below is correct and accurate "
    "given the information provided.\n"
    "Take the information about the image as correct.\n"
    "Judge only the reasoning itself, not whether the background information is right.\n"
    "If the reasoning includes calculations, check that they are right.\n"
    "Output 'correct' if you find no mistake in the reasoning, and 'incorrect' if you find one."
)
FLAGGED = "incorrect"


def stage_text(answer: str, stage: str) -> str | None:
    """The text inside <stage>…</stage> of a tagged answer, or None when it is not there."""
    match = re.search(rf"<{stage}>(.*?)</{stage}>", answer, re.DOTALL)
    return match.group(1) if match else None


def judge_hint(answer: str, stage: str) -> str | None:
    """What the reference shows the judge besides the two responses: the caption for the
    reasoning stage, caption and reasoning for the conclusion, nothing otherwise."""
    if stage == "REASONING":
        return stage_text(answer, "CAPTION")
    if stage == "CONCLUSION":
        return (stage_text(answer, "CAPTION") or "") + (stage_text(answer, "REASONING") or "")
    return None


def judge_prompt(stage: str, question: str, hint: str | None, responses: list[str]) -> str:
    instruction, reminder = JUDGE_CRITERIA[stage]
    text = f"{instruction}\n\nQuestion: {question}"
    if hint:
        text += f"\n\nHint about the Question: {hint}"
    for number, response in enumerate(responses, start=1):
        text += f"\nResponse {number}: {response}"
    return text + f"\n\n{reminder}" + ANSWER_FORMAT


def reasoning_check_prompt(hint: str | None, reasoning: str) -> str:
    return f"{REASONING_CHECK}\n\nGiven Information: {hint}\n\nReasoning Process: {reasoning}"
