"""Prompt text for candidates and judge calls. Pure: chat rendering is a callback (the model's
chat template, supplied by the engine adapter), so prompts can be checked without a model.

Prefixes are built by string concatenation from one rendered base, so every candidate call of
a request shares a byte-identical prefix with the calls before it and vLLM's prefix cache can
serve it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.search.interface import Prompt, PromptPart
from server.search.schema import Stage, StageSchema
from server.search.trace import Candidate

ChatMessage = dict[str, Any]
RenderChat = Callable[[list[ChatMessage]], str]

JUDGE_OPTIONS = ("1", "2")


@dataclass(frozen=True)
class Conversation:
    """A request's messages in chat-template form, images replaced by {"type": "image"} parts
    (in order), and the decoded images themselves."""

    messages: tuple[ChatMessage, ...]
    images: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def question(self) -> str:
        for message in reversed(self.messages):
            if message["role"] == "user":
                return "\n".join(p["text"] for p in message["content"] if p["type"] == "text")
        return ""


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
        return self.render_chat(messages)

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


def merge_text(parts: Sequence[PromptPart]) -> Prompt:
    """Join neighbouring text parts, so each is tokenised once, as one piece."""
    merged: list[PromptPart] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)
