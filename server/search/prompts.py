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

from server.search.schema import Stage, StageSchema

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

    def stage(self, base: str, chosen: list[tuple[Stage, str]], stage: Stage) -> str:
        """Prompt that makes the model write `stage` after the stages chosen so far."""
        return base + self.schema.render(chosen) + stage.open_tag

    def judge(self, conversation: Conversation, chosen: list[tuple[Stage, str]],
              what: str, criterion: str, first: str, second: str) -> str:
        """Prompt for one pairwise comparison; the answer is one constrained token, 1 or 2.

        The image, the question and the stages chosen so far come first, so all comparisons
        of a stage share that prefix."""
        image_parts = [{"type": "image"} for _ in conversation.images]
        context = self.schema.render(chosen).strip()
        text = f"Question: {conversation.question}\n\n"
        if context:
            text += f"The answer so far:\n{context}\n\n"
        text += (
            f"Two candidates for {what} follow. {criterion}\n\n"
            f"Response 1:\n{first}\n\nResponse 2:\n{second}\n\n"
            "Reply with the number of the better response only: 1 or 2."
        )
        message = {"role": "user", "content": [*image_parts, text_part(text)]}
        return self.render_chat([message])


def judge_subject(stage: Stage) -> str:
    return f"the {stage.tag} stage"


def full_answer_text(schema: StageSchema, texts: Sequence[tuple[Stage, str]]) -> str:
    return schema.render(list(texts)).strip()
