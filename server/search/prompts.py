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
            messages.insert(0, {"role": "system",
                                "content": [text_part(self.schema.format_instruction)]})
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

    @staticmethod
    def verify(transcript: Prompt, stage: Stage) -> Prompt:
        """Prompt for one pointwise check of a candidate; the answer is one constrained token,
        yes or no. It continues the candidate's own transcript (image, question, chosen stages,
        the candidate closed), so the prefix cache holds all of it but the question."""
        return merge_text([*transcript, f"\n\n[Verify] Is the {stage.tag} stage above "
                           "correct? Reply yes or no: "])

    def verification(self, transcript: Prompt, stage: Stage) -> tuple[Prompt, tuple[str, str]]:
        """The verification prompt and its (yes, no) options for this model: the trained form
        (`verify`), or for a general instruct model (prompted mode) a direct question it can
        answer without training, with capitalised options."""
        if not self.prompted:
            return self.verify(transcript, stage), VERIFY_OPTIONS
        question = (f"\n\nCheck the {stage.open_tag} section above against the image and the "
                    "question. Is it correct? Answer Yes or No.\nAnswer: ")
        return merge_text([*transcript, question]), PROMPTED_VERIFY_OPTIONS


def merge_text(parts: Sequence[PromptPart]) -> Prompt:
    """Join neighbouring text parts, so each is tokenised once, as one piece."""
    merged: list[PromptPart] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)
