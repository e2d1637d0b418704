"""What a comparison keeps: one `Prediction` per system and question, appended to the
predictions file (JSON Lines) as it arrives, and read back for the report and for resuming.

A prediction holds the input (the prompt sent, the image reference, the reference answer), the
output (the full `content`, the text that was scored, the reasoning, the stage trace when the
server returns one), the score (right / wrong / undecided, and what the scorer read), tokens,
latency, the HTTP status and error, and the system's settings (endpoint, model, request fields),
so that a rerun can refuse to mix answers of other settings into the file.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from evaluation.jsonlines import JsonLines

Key = tuple[str, str]  # (system, item id)


@dataclass(frozen=True)
class System:
    """One endpoint and how to ask it."""

    name: str  # the label in the report ("A", "ours-beam4", ...)
    slot: str
    base_url: str
    model: str
    fields: dict[str, Any] = field(default_factory=dict)  # merged into every request body
    api_key: str | None = None
    system_prompt: str | None = None  # sent as a system message
    prefill: str | None = None  # the answer's start, continued by the model (vLLM's way)

    @property
    def settings(self) -> dict[str, Any]:
        """What each prediction records of the system (the key is left out)."""
        return {"base_url": self.base_url, **identity(self.__dict__)}


def identity(settings: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs of a system the same: the model and how it is asked (not where it
    is served: a server restarted on another port answers the same)."""
    return {key: settings.get(key) for key in ("model", "fields", "system_prompt", "prefill")}


@dataclass
class Prediction:
    system: str
    id: str
    index: int  # the item's position in the dataset
    prompt: str  # the text sent with the image
    image: str | None  # the file's reference to the image (path, URL, "base64")
    expected: str
    scorer: str  # the scorer that decided (auto resolved)
    status: int  # HTTP status of the last attempt; 0: no response
    answer: str | None = None  # message.content as returned
    scored: str | None = None  # what was scored: the answer stage's text when tagged
    reasoning: str | None = None
    stages: list[dict[str, Any]] | None = None  # message.stages (cot-server's trace)
    correct: bool | None = None  # None: not scored (an error, or the judge gave no verdict)
    read: str | None = None  # what the scorer read (a letter, a number, the judge's word)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    attempts: int = 1
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    slot: str = "a"  # which system of the command it answered for: a or b

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def done(self) -> bool:
        """Skipped by a rerun: answered and scored."""
        return self.ok and self.correct is not None

    @property
    def right(self) -> bool:
        return self.ok and self.correct is True

    @property
    def key(self) -> Key:
        return self.system, self.id

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class PredictionLog(JsonLines):
    def read(self) -> list[Prediction]:
        out = []
        for record in self.read_records():
            try:
                out.append(Prediction.from_dict(record))
            except TypeError:
                continue
        return out

    def append(self, prediction: Prediction) -> None:
        self.append_record(asdict(prediction))


def latest(predictions: list[Prediction]) -> dict[Key, Prediction]:
    """One prediction per (system, item): the last scored one, else the last written."""
    out: dict[Key, Prediction] = {}
    for p in predictions:
        if p.done or p.key not in out or not out[p.key].done:
            out[p.key] = p
    return out


def split_answer(content: str, tag: str | None) -> tuple[str, str | None]:
    """(the text to score, the reasoning before it) from a content that may hold tagged
    stages: with `tag` (e.g. CONCLUSION) present, its text is scored and what precedes it is
    the reasoning; a content that only closes the tag (its opening was prefilled) is cut at the
    close; otherwise the whole content is scored."""
    if tag:
        opening, closing = f"<{tag}>", f"</{tag}>"
        match = re.search(rf"{re.escape(opening)}(.*?)(?:{re.escape(closing)}|$)", content,
                          re.DOTALL)
        if match:
            before = content[:match.start()].strip()
            return match.group(1).strip(), before or None
        if closing in content:
            return content.split(closing, 1)[0].strip(), None
    return content.strip(), None


def read_response(prediction: Prediction, data: dict[str, Any], answer_tag: str | None
                  ) -> Prediction:
    """Fill `prediction` from a 200 chat completion body (the score is set apart)."""
    choice = data["choices"][0]
    message = choice["message"]
    content = message.get("content") or ""
    scored, before = split_answer(content, answer_tag)
    usage = data.get("usage") or {}
    details = usage.get("completion_tokens_details") or {}
    prediction.answer = content
    prediction.scored = scored
    prediction.reasoning = message.get("reasoning_content") or message.get("reasoning") or before
    prediction.stages = message.get("stages")
    prediction.finish_reason = choice.get("finish_reason")
    prediction.prompt_tokens = usage.get("prompt_tokens")
    prediction.completion_tokens = usage.get("completion_tokens")
    prediction.reasoning_tokens = details.get("reasoning_tokens")
    return prediction
