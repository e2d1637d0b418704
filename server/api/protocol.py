"""OpenAI wire models (request, response, stream chunk, error) and the request's conversion into
search parameters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.config import Settings
from server.search.interface import Sampling
from server.search.params import SearchParams, SearchShape, Selector
from server.search.prompts import Conversation
from server.search.schema import get_schema

LEGACY_BEST_OF_N = "best_of_n"  # selector value of earlier versions: search=best_of_n, judge


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]  # developer: OpenAI's newer
    # name for system instructions; it is rendered as a system message
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def parts(self) -> list[TextPart | ImagePart]:
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(type="text", text=self.content)]
        return list(self.content)


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # vLLM's common sampling extras, sent by clients written for vLLM
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=2)
    min_tokens: int = Field(0, ge=0, description="Each stage runs at least this many tokens "
                            "(or to its cap) before its closing tag, a stop string or EOS may "
                            "end it.")
    ignore_eos: bool = Field(False, description="EOS does not end a stage; its closing tag or "
                             "cap does.")
    # stage-level search (OpenAI SDK: extra_body)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    beam_width: int | None = Field(None, ge=1, le=16)
    selector: Selector | Literal["best_of_n"] | None = None
    search: SearchShape | None = Field(None, description="stage (stage-level beam search, the "
                                       "default) or best_of_n (whole answers, selected once)")
    return_trace: bool = False
    stage_max_tokens: int | dict[str, int] | None = None
    timeout: float | None = Field(None, gt=0, description="Deadline in seconds for the whole "
                                  "request, search included (capped by the server's).")

    @model_validator(mode="after")
    def _checks(self) -> ChatCompletionRequest:
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("messages must contain at least one user message")
        stops = self.stop_list
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes at most 4 non-empty strings")
        caps = self.stage_max_tokens
        if (isinstance(caps, int) and caps < 1) or (isinstance(caps, dict) and any(
                v < 1 for v in caps.values())):
            raise ValueError("stage_max_tokens must be positive")
        return self

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def resolved_beam_width(self, settings: Settings) -> int:
        if self.beam_width is not None:
            return self.beam_width
        if self.reasoning_effort is not None:
            return settings.effort_width(self.reasoning_effort)
        return settings.beam_width

    def to_conversation(self, decode_image: Callable[[str], Any]) -> Conversation:
        """Messages in chat-template form, with each image part decoded by `decode_image`."""
        messages: list[dict[str, Any]] = []
        images: list[Any] = []
        for message in self.messages:
            parts: list[dict[str, Any]] = []
            for part in message.parts():
                if isinstance(part, ImagePart):
                    images.append(decode_image(part.image_url.url))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": part.text})
            role = "system" if message.role == "developer" else message.role
            messages.append({"role": role, "content": parts})
        return Conversation(tuple(messages), tuple(images))

    @property
    def image_count(self) -> int:
        return sum(isinstance(p, ImagePart) for m in self.messages for p in m.parts())

    def to_search_params(self, settings: Settings) -> SearchParams:
        schema = get_schema(settings.stage_schema)
        width = self.resolved_beam_width(settings)
        if isinstance(self.stage_max_tokens, dict):
            known = {s.tag.lower(): s.tag for s in schema.stages}
            unknown = sorted(set(k.lower() for k in self.stage_max_tokens) - set(known))
            if unknown:
                raise ValueError(f"stage_max_tokens names unknown stages {unknown}; "
                                 f"this server's stages are {list(schema.tags)}")
            caps = {known[k.lower()]: v for k, v in self.stage_max_tokens.items()}
        else:
            caps = {}
        default_cap = (self.stage_max_tokens if isinstance(self.stage_max_tokens, int)
                       else settings.stage_max_tokens)
        searching = width > 1
        temperature = self.temperature if self.temperature is not None else (
            settings.search_temperature if searching else 0.0)
        top_p = self.top_p if self.top_p is not None else (
            settings.search_top_p if searching else 1.0)
        sampling = Sampling(temperature=temperature, top_p=top_p, top_k=self.top_k,
                            min_p=self.min_p, repetition_penalty=self.repetition_penalty,
                            seed=self.seed, min_tokens=self.min_tokens,
                            ignore_eos=self.ignore_eos)
        selector, shape = self.selector or settings.selector, self.search or SearchShape.STAGE
        if selector == LEGACY_BEST_OF_N:
            selector, shape = Selector.JUDGE, SearchShape.BEST_OF_N
        return SearchParams(
            schema=schema, beam_width=width, selector=Selector(selector), shape=shape,
            stage_max_tokens=caps, default_stage_max_tokens=default_cap,
            max_tokens=self.token_budget, sampling=sampling, stop=tuple(self.stop_list),
            judge_both_orders=settings.judge_both_orders,
            prompted=settings.stage_mode == "prompted")


# --------------------------------------------------------------------------- responses


class StageCandidateOut(BaseModel):
    text: str
    tokens: int
    mean_logprob: float | None
    closed: bool
    score: float | None = Field(None, description="the verifier's probability that this "
                                "candidate is correct, where the selector asked it")


class ComparisonOut(BaseModel):
    round: int
    first: int
    second: int
    winner: int
    confidence: float | None


class StageOut(BaseModel):
    name: str
    tag: str
    text: str
    chosen_index: int
    selected_by: str = Field(description="what made the pick: a selector's name, `only` (one "
                             "usable candidate) or `agree` (all candidates said the same)")
    candidates: list[StageCandidateOut]
    comparisons: list[ComparisonOut]
    fallback: bool = False


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning_content: str | None = None
    stages: list[StageOut] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0
    judge_tokens: int = 0


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: UsageOut


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "cot-server"
    root: str | None = None
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"
