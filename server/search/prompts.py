"""Prompt text for candidates and judge calls. Pure: chat rendering is a callback (the model's
chat template, supplied by the engine adapter), so prompts can be checked without a model.

Prefixes are built by string concatenation from one rendered base, so every candidate call of
a request shares a byte-identical prefix with the calls before it and vLLM's prefix cache can
serve it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.search.interface import Prompt, PromptPart
from server.search.schema import Stage, StageSchema
from server.search.trace import Candidate

ChatMessage = dict[str, Any]
# the model's chat template: messages and extra template variables (chat_template_kwargs)
RenderChat = Callable[[list[ChatMessage], Mapping[str, Any]], str]
# a stage a verification quotes, with its text
Evidence = tuple[Stage, str] | None

JUDGE_OPTIONS = ("1", "2")
VERIFY_OPTIONS = ("yes", "no")  # what the tiny model is trained to answer
PROMPTED_VERIFY_OPTIONS = ("Yes", "No")  # what instruct models answer to a direct question


@dataclass(frozen=True)
class Conversation:
    """A request's messages in chat-template form, images replaced by {"type": "image"} parts
    (in order), and the decoded images themselves."""

    messages: tuple[ChatMessage, ...]
    images: tuple[Any, ...] = field(default=(), compare=False)
    template_kwargs: Mapping[str, Any] = field(default_factory=dict, compare=False)


def text_part(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


@dataclass(frozen=True)
class PromptBuilder:
    render_chat: RenderChat
    schema: StageSchema
    prompted: bool = False  # add the format instruction as a system message

    def base(self, conversation: Conversation) -> str:
        messages = list(conversation.messages)
        if self.prompted:
            messages = with_instruction(messages, self.schema.format_instruction)
        return self.render_chat(messages, conversation.template_kwargs)

    def stage(self, base: str, chosen: Sequence[tuple[Stage, Candidate]], stage: Stage
              ) -> Prompt:
        """Prompt that makes the model write `stage` after the stages chosen so far."""
        return merge_text([*self.answer(base, chosen), stage.open_tag])

    def answer(self, base: str, chosen: Sequence[tuple[Stage, Candidate]]) -> Prompt:
        """The base prompt followed by the chosen stages, each as the model wrote it."""
        parts: list[PromptPart] = [base]
        for done, candidate in chosen:
            parts += [done.open_tag, *candidate.as_prompt(done.close_tag), self.schema.separator]
        return merge_text(parts)

    @staticmethod
    def judge(prefix: Prompt, first: Prompt, second: str, what: str, criterion: str) -> Prompt:
        """Prompt for one pairwise comparison; the answer is one constrained token, 1 or 2.

        It continues the transcript the candidates were generated from (image, question,
        chosen stages, then the first candidate), so the engine's prefix cache already holds
        everything up to the second candidate, including the first candidate's own tokens."""
        question = (f"\n\n[A second candidate for {what}]\n{second}\n\n"
                    f"[Judge] {criterion} Reply 1 if the first candidate is better, "
                    "2 if the second one is: ")
        return merge_text([*prefix, *first, question])

    def evidence(self, chosen: Sequence[tuple[Stage, Candidate]], stage: Stage) -> Evidence:
        """What a verification of `stage` quotes: the schema's evidence stage as chosen before
        it (`StageSchema.evidence_tag`), or None."""
        wanted = self.schema.evidence_for(stage.tag)
        if wanted is None:
            return None
        return next(((done, c.text) for done, c in chosen if done.tag == wanted.tag), None)

    @staticmethod
    def verify(transcript: Prompt, stage: Stage, evidence: Evidence = None) -> Prompt:
        """Prompt for one pointwise check of a candidate; the answer is one constrained token,
        yes or no. It continues the candidate's own transcript (image, question, chosen stages,
        the candidate closed), so the prefix cache holds all of it but the question. With
        `evidence`, the question first quotes that stage again (the caption a reasoning must
        agree with): read after the candidate, each quoted fact can look back at the claim."""
        quoted = f"Again: {evidence[0].wrap(evidence[1])}\n" if evidence else ""
        return merge_text([*transcript, f"\n\n[Verify] {quoted}Is the {stage.tag} stage above "
                           "correct? Reply yes or no: "])

    def verification(self, transcript: Prompt, stage: Stage, evidence: Evidence = None
                     ) -> tuple[Prompt, tuple[str, str]]:
        """The verification prompt and its (yes, no) options for this model: the trained form
        (`verify`), or for a general instruct model (prompted mode) a direct question it can
        answer without training, with capitalised options."""
        if not self.prompted:
            return self.verify(transcript, stage, evidence), VERIFY_OPTIONS
        quoted = (f" The {evidence[0].open_tag} section said: {evidence[1]}" if evidence
                  else "")
        question = (f"\n\nCheck the {stage.open_tag} section above against the image and the "
                    f"question.{quoted} Is it correct? Answer Yes or No.\nAnswer: ")
        return merge_text([*transcript, question]), PROMPTED_VERIFY_OPTIONS

    def summary(self, base: str, chain: Sequence[tuple[Stage, Candidate]]) -> Prompt:
        """Prompt for the summariser (Insight-V's summary agent), in this model's own transcript:
        the reasoner's whole chain as it wrote it (the prefix cache holds all of it), then the
        request to check it and answer again, ending in the answer stage's opening tag. The
        trained form (a model taught to overrule a wrong chain), or for a general instruct
        model (prompted mode) a direct instruction."""
        answer = self.schema.answer_stage
        if self.prompted:
            request = (f"Check the reasoning above against the image and the question. "
                       f"If it is wrong, do not follow it. Write the correct final answer "
                       f"again in {answer.open_tag}{answer.close_tag}.\n")
        else:
            request = "[Summarize] Is the answer above correct? Answer again: "
        return merge_text([*self.answer(base, chain), request, answer.open_tag])


def with_instruction(messages: list[ChatMessage], instruction: str) -> list[ChatMessage]:
    """The messages with `instruction` first in one system message: a caller's own system
    message keeps its text after the instruction, in the same message, since some templates
    take one system message only (Gemma 3's folds the first into the user turn and refuses
    roles that do not alternate)."""
    if not messages or messages[0].get("role") != "system":
        return [{"role": "system", "content": [text_part(instruction)]}, *messages]
    first = messages[0]
    content = first["content"]
    parts = [text_part(content)] if isinstance(content, str) else list(content)
    texts = [p["text"] for p in parts if p.get("type") == "text"]
    others = [p for p in parts if p.get("type") != "text"]
    merged = text_part("\n\n".join([instruction, *texts]))
    return [{**first, "content": [merged, *others]}, *messages[1:]]


def merge_text(parts: Sequence[PromptPart]) -> Prompt:
    """Join neighbouring text parts, so each is tokenised once, as one piece."""
    merged: list[PromptPart] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)
