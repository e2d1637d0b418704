"""Responses API wire models: the request (which rewrites itself as a chat completion request,
so that validation, search parameters and the chat service are shared) and the Response."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from server.api.protocol import ChatCompletionRequest


class _Item(BaseModel):
    """Nested request objects: fields this server does not read (an item's `id` or `status`
    when a client sends an earlier output back) are ignored."""

    model_config = ConfigDict(extra="ignore")


class InputText(_Item):
    type: Literal["input_text"]
    text: str


class OutputTextIn(_Item):
    """An earlier answer's text, in a conversation the client sends back."""

    type: Literal["output_text"]
    text: str


class RefusalIn(_Item):
    type: Literal["refusal"]
    refusal: str


class ImageRef(_Item):
    url: str


class InputImage(_Item):
    type: Literal["input_image"]
    image_url: str | ImageRef | None = Field(None, validate_default=True, description="a data: "
                                             "URL or an http(s) URL (also as {\"url\": ...})")
    file_id: str | None = None
    detail: str | None = None  # accepted; the image is used as it is

    @field_validator("image_url")
    @classmethod
    def _required(cls, value: str | ImageRef | None) -> str | ImageRef:
        if value is None:
            raise ValueError("input_image needs an image_url (this server keeps no files, so "
                             "file_id cannot be used)")
        return value

    @property
    def url(self) -> str:
        return self.image_url.url if isinstance(self.image_url, ImageRef) else str(self.image_url)


InputPart = Annotated[InputText | InputImage | OutputTextIn | RefusalIn,
                      Field(discriminator="type")]


class MessageIn(_Item):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[InputPart]

    def to_chat(self) -> dict[str, Any]:
        """The message as a chat completion message (a wire dict, validated there)."""
        if isinstance(self.content, str):
            return {"role": self.role, "content": self.content}
        parts: list[dict[str, Any]] = []
        for part in self.content:
            if isinstance(part, InputImage):
                parts.append({"type": "image_url", "image_url": {"url": part.url}})
            else:
                text = part.refusal if isinstance(part, RefusalIn) else part.text
                parts.append({"type": "text", "text": text})
        return {"role": self.role, "content": parts}


class ReasoningIn(_Item):
    """An earlier answer's reasoning item, sent back with the conversation: accepted and not
    fed to the model (chat completions treat an earlier `reasoning_content` the same way)."""

    type: Literal["reasoning"]


# the tags are named as pydantic names union branches, which error messages leave out
ITEM_TAGS = {"message": "Message", "reasoning": "Reasoning"}


def _item_type(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "")
    return ITEM_TAGS.get(str(kind), str(kind))


# `type` may be left out of a message item (OpenAI's "easy input message")
InputItem = Annotated[
    Annotated[MessageIn, Tag("Message")] | Annotated[ReasoningIn, Tag("Reasoning")],
    Discriminator(_item_type, custom_error_type="invalid_item", custom_error_message=(
        "an input item must be a message (or an earlier answer's reasoning item); this "
        "server runs no tools"))]

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
SummaryMode = Literal["auto", "concise", "detailed"]


class ReasoningOptions(_Item):
    effort: Effort | None = Field(None, description="a preset of a width and a budget: none "
                                  "and minimal are greedy, xhigh and max are high")
    summary: SummaryMode | None = Field(None, description="any value returns the tagged stages "
                                        "before the answer as the reasoning item's summary")
    generate_summary: SummaryMode | None = None  # the older name of `summary`


# fields that mean the same here as in chat completions, passed on as they are
PASSED_ON = ("model", "temperature", "top_p", "stream", "user", "seed", "top_k", "min_p",
             "repetition_penalty", "min_tokens", "ignore_eos", "beam_width", "selector",
             "search", "search_budget", "retrace_keep", "retrace_threshold", "max_retraces",
             "greedy_candidate", "stage_max_tokens", "timeout")
# chat completion field -> the field of a Responses request it came from, for error messages
FIELD_NAMES = {"messages": "input", "max_completion_tokens": "max_output_tokens",
               "reasoning_effort": "reasoning.effort"}


class ResponsesRequest(BaseModel):
    """Fields this server does not read are accepted and ignored (as `vllm serve` does) and
    named in the X-Ignored-Fields header; ranges are checked once, by the chat completion
    request this becomes."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[InputItem]
    instructions: str | None = Field(None, description="rendered as a system message first")
    max_output_tokens: int | None = Field(None, description="bounds the returned path (every "
                                          "chosen stage), as max_completion_tokens does")
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    reasoning: ReasoningOptions | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    # sampling extras and the stage-level search, as in chat completions (SDK: extra_body)
    seed: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None
    ignore_eos: bool | None = None
    beam_width: int | None = None
    selector: str | None = None
    search: str | None = None
    search_budget: int | None = None
    retrace_keep: int | None = None
    retrace_threshold: float | None = None
    max_retraces: int | None = None
    greedy_candidate: bool | None = None
    return_trace: bool = Field(False, description="the tagged stages before the answer as the "
                               "reasoning item's content (reasoning_text)")
    stage_max_tokens: int | dict[str, int] | None = None
    timeout: float | None = None

    @field_validator("input")
    @classmethod
    def _has_a_user_message(cls, value: str | list[MessageIn | ReasoningIn]
                            ) -> str | list[MessageIn | ReasoningIn]:
        if isinstance(value, list) and not any(
                isinstance(item, MessageIn) and item.role == "user" for item in value):
            raise ValueError("input must contain at least one user message")
        return value

    @field_validator("previous_response_id")
    @classmethod
    def _nothing_is_stored(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("this server keeps no responses; send the whole conversation "
                             "in input")
        return None

    @property
    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})

    @property
    def wants_summary(self) -> bool:
        options = self.reasoning
        return options is not None and (options.summary or options.generate_summary) is not None

    @property
    def effort(self) -> Effort | None:
        return self.reasoning.effort if self.reasoning is not None else None

    def messages(self) -> list[dict[str, Any]]:
        """Instructions and input as chat completion messages; reasoning items are left out."""
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        if isinstance(self.input, str):
            return [*messages, {"role": "user", "content": self.input}]
        return messages + [item.to_chat() for item in self.input if isinstance(item, MessageIn)]

    def to_chat(self) -> ChatCompletionRequest:
        """The chat completion request that runs this one (raises pydantic's ValidationError,
        in chat completion field names, for values out of range)."""
        body: dict[str, Any] = {name: getattr(self, name) for name in PASSED_ON
                                if getattr(self, name) is not None}
        body |= {"messages": self.messages(), "n": 1,
                 "return_trace": self.return_trace or self.wants_summary}
        if self.max_output_tokens is not None:
            body["max_completion_tokens"] = self.max_output_tokens
        if self.effort is not None:
            body["reasoning_effort"] = self.effort
        if self.stream:  # the last chunk carries the usage that response.completed reports
            body["stream_options"] = {"include_usage": True}
        return ChatCompletionRequest.model_validate(body)


# --------------------------------------------------------------------------- the Response

ItemStatus = Literal["in_progress", "completed", "incomplete"]
ResponseStatus = ItemStatus


class SummaryText(BaseModel):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningItem(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[SummaryText] = Field(description="the tagged stages before the answer, when "
                                       "reasoning.summary asks for a summary")
    content: list[ReasoningText] | None = Field(None, description="the tagged stages before the "
                                                "answer, with return_trace")
    status: ItemStatus


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)


class MessageItem(BaseModel):
    type: Literal["message"] = "message"
    id: str
    role: Literal["assistant"] = "assistant"
    status: ItemStatus
    content: list[OutputText]


OutputItem = Annotated[ReasoningItem | MessageItem, Field(discriminator="type")]


class InputTokensDetails(BaseModel):
    cached_tokens: int
    # the SDK's schema requires it; vLLM's prefix cache has no separately counted writes
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int
    judge_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"] = "max_output_tokens"


class ReasoningEcho(BaseModel):
    effort: Effort | None = None
    summary: SummaryMode | None = None


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None = None
    status: ResponseStatus
    incomplete_details: IncompleteDetails | None = None
    error: None = None
    model: str
    output: list[OutputItem]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: ReasoningEcho | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool = False
    tool_choice: Literal["none"] = "none"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    store: bool = False
    usage: ResponseUsage | None = None


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"
