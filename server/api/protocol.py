"""OpenAI wire models (request, response, stream chunk, error) and the request's conversion into
search parameters."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from server.config import Settings
from server.search.budget import SearchBudget
from server.search.interface import Constraint, Sampling
from server.search.params import Pipeline, SearchParams, SearchShape, Selector, derive_seed
from server.search.prompts import Conversation
from server.search.repetition import RepetitionRule
from server.search.schema import get_schema

LEGACY_BEST_OF_N = "best_of_n"  # selector value of earlier versions: search=best_of_n, judge
INT64 = 2**63  # seeds: OpenAI's and vLLM's signed 64-bit range
MAX_STOPS = 4  # OpenAI's limit on stop sequences

# JSON types as OpenAI checks them: a number is not a string, an integer not a decimal number,
# a boolean not a number (pydantic's lax mode would take "5", 5.0 and 1 for each other).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # integers are numbers too
Bool = Annotated[bool, Strict()]


def _null_means_default(default: Any) -> Any:
    """An explicit null is the field's default, as OpenAI and vLLM take it (the schema says
    the field may be null)."""
    return BeforeValidator(lambda value: default if value is None else value)


def _also_null(schema: dict[str, Any]) -> None:
    """The field's JSON schema, with null allowed besides."""
    kept = {k: schema.pop(k) for k in list(schema) if k not in ("title", "description",
                                                                "default")}
    schema["anyOf"] = [kept, {"type": "null"}]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    """Fields this server does not read are accepted and ignored, as `vllm serve` does (the
    request route logs them once and names them in a response header); the fields it does read
    are validated strictly."""

    model_config = ConfigDict(extra="allow")

    @property
    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


class RefusalPart(_Strict):
    """An earlier answer's refusal, in an assistant message sent back (read as its text)."""

    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[TextPart | ImagePart | RefusalPart, Field(discriminator="type")]
# which roles may carry which part, as OpenAI allows them
PART_ROLES = {"image_url": ("user",), "refusal": ("assistant",)}


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]  # developer: OpenAI's newer
    # name for system instructions; it is rendered as a system message
    # an earlier answer's tool calls: accepted (they let its content be null, as in OpenAI's
    # rules), not fed to the model; this server runs no tools
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    content: str | Annotated[list[ContentPart], Field(min_length=1)] | None = Field(
        None, validate_default=True, description="Required, except in an assistant message "
        "that carries tool_calls or function_call.")
    name: str | None = None
    # an earlier answer's reasoning, as clients send it back in a multi-turn conversation;
    # accepted, and not fed back to the model
    reasoning: str | None = None
    reasoning_content: str | None = None

    @field_validator("content")
    @classmethod
    def _openai_rules(cls, content: str | list[Any] | None, info: ValidationInfo
                      ) -> str | list[Any] | None:
        role = info.data.get("role")
        if role is None:  # the role itself is refused
            return content
        if content is None:
            if role != "assistant":
                raise ValueError(f"a {role} message needs content (a string or a list of "
                                 "content parts), not null")
            if not (info.data.get("tool_calls") or info.data.get("function_call")):
                raise ValueError("an assistant message needs content unless it carries "
                                 "tool_calls or function_call")
        for part in content if isinstance(content, list) else ():
            allowed = PART_ROLES.get(part.type)
            if allowed is not None and role not in allowed:
                raise ValueError(f"{part.type} parts are only allowed in "
                                 f"{' or '.join(allowed)} messages, not in {role} messages")
        return content

    def parts(self) -> list[TextPart | ImagePart]:
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(type="text", text=self.content)]
        return [TextPart(type="text", text=p.refusal) if isinstance(p, RefusalPart) else p
                for p in self.content]


class StreamOptions(_Lenient):
    include_usage: Bool = False
    continuous_usage_stats: Bool = Field(False, description="Every chunk carries the usage "
                                         "so far (vLLM's extension).")


class JsonSchemaFormat(_Lenient):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$", description="As OpenAI requires it: "
                      "letters, digits, underscores and dashes, at most 64.")
    schema_: JsonSchema | None = Field(None, alias="schema", description="Without one, the "
                                       "answer is any JSON object (as json_object).")
    description: str | None = None
    strict: Bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StructuredOutputs(_Lenient):
    """vLLM's `structured_outputs` (one of these)."""

    json_: JsonSchema | None = Field(None, alias="json")
    regex: Regex | None = None
    choice: Choices | None = None
    grammar: str | None = None
    json_object: Bool | None = None


TEMPLATE_RESERVED = frozenset({"tokenize", "add_generation_prompt", "chat_template",
                               "conversation", "messages", "continue_final_message",
                               "return_dict"})
class InvalidField(ValueError):
    """A request whose fields are each valid but do not go together, or do not fit this
    server (a 400 naming `param`)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


EFFORT_GREEDY = ("none", "minimal")  # reasoning_effort values that mean: no search, greedy
EFFORT_AS_HIGH = ("xhigh", "max")  # OpenAI's efforts above high: the high preset


def _json_schema(value: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the JSON schema is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("the JSON schema must be an object")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"the regular expression does not compile: {exc}") from None
    return value


# checked as far as can be without the engine (which compiles them and may still refuse)
JsonSchema = Annotated[dict[str, Any] | str, AfterValidator(_json_schema)]
Regex = Annotated[str, AfterValidator(_regex)]
Choices = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


def _constraint(kind: str, value: Any) -> Constraint:
    if kind == "json":
        return Constraint("json", json.dumps(value))
    if kind == "choice":
        return Constraint("choice", tuple(value))
    if kind == "regex":
        return Constraint("regex", value)
    if kind == "grammar":
        return Constraint("grammar", value)
    return Constraint("json_object")


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: Int | None = Field(None, ge=1)
    max_completion_tokens: Int | None = Field(None, ge=1)
    temperature: Float | None = Field(None, ge=0, le=2)
    top_p: Float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: Int | None = Field(None, ge=-INT64, lt=INT64)
    n: Annotated[Int, _null_means_default(1)] = Field(1, ge=1, json_schema_extra=_also_null)
    stream: Annotated[Bool, _null_means_default(False)] = Field(
        False, json_schema_extra=_also_null)
    stream_options: StreamOptions | None = None
    user: str | None = None
    # vLLM's common sampling extras, sent by clients written for vLLM
    top_k: Int | None = Field(None, ge=-1)
    min_p: Float | None = Field(None, ge=0, le=1)
    repetition_penalty: Float | None = Field(None, gt=0)
    frequency_penalty: Annotated[Float, _null_means_default(0.0)] = Field(
        0.0, ge=-2, le=2, json_schema_extra=_also_null)
    presence_penalty: Annotated[Float, _null_means_default(0.0)] = Field(
        0.0, ge=-2, le=2, json_schema_extra=_also_null)
    logit_bias: dict[str, Annotated[Float, Field(ge=-100, le=100)]] | None = Field(
        None, description="Token id (as a string) -> bias added to its logit, every stage.")
    logprobs: Annotated[Bool, _null_means_default(False)] = Field(
        False, json_schema_extra=_also_null, description="Return the answer's (CONCLUSION's) "
        "tokens with their log-probabilities.")
    top_logprobs: Int | None = Field(None, ge=0, le=20)
    stop_token_ids: list[Annotated[Int, Field(ge=0)]] | None = None
    skip_special_tokens: Bool = True
    chat_template_kwargs: dict[str, Any] | None = None
    # structured answers: constrain the answer stage only
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputs | None = None
    guided_json: JsonSchema | None = None
    guided_regex: Regex | None = None
    guided_choice: Choices | None = None
    guided_grammar: str | None = None
    min_tokens: Int = Field(0, ge=0, description="Each stage runs at least this many tokens "
                            "(or to its cap) before its closing tag, a stop string or EOS may "
                            "end it.")
    ignore_eos: Bool = Field(False, description="EOS does not end a stage; its closing tag or "
                             "cap does.")
    # stage-level search (OpenAI SDK: extra_body)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh",
                              "max"] | None = Field(None, description="none and minimal are "
                                                    "greedy; low, medium and high beam-width "
                                                    "presets; xhigh and max are high")
    beam_width: Int | None = Field(None, ge=1, le=16)
    selector: Selector | Literal["best_of_n"] | None = None
    search: SearchShape | None = Field(None, description="stage (stage-level beam search, the "
                                       "default), best_of_n (whole answers, selected once) or "
                                       "retrace (the best retrace_keep of each stage go on; a "
                                       "stage the verifier scores low sends the search back "
                                       "one)")
    search_budget: Int | None = Field(None, ge=1, description="The most tokens the search "
                                      "generates (candidates and verdicts: "
                                      "usage.completion_tokens): it widens only where "
                                      "candidates disagree and the budget affords it")
    retrace_keep: Int | None = Field(None, ge=1, le=16, description="search=retrace: "
                                     "candidates of each stage that go on (server default)")
    retrace_threshold: Float | None = Field(None, ge=0, le=1, description="search=retrace: "
                                            "the verifier score below which a stage sends the "
                                            "search back (server default)")
    max_retraces: Int | None = Field(None, ge=0, le=16, description="search=retrace: the most "
                                     "times it goes back (server default)")
    greedy_candidate: Bool | None = Field(None, description="One of each stage's candidates "
                                          "(best-of-N: the first answer) is the greedy one, "
                                          "the others sampled (default: the server's)")
    pipeline: Pipeline | None = Field(None, description="search (the search's answer stage "
                                      "answers) or reason_summarize (Insight-V's two agents: "
                                      "the search's whole chain is the reasoning, a summariser "
                                      "call reads it and answers); default: the server's")
    return_trace: Bool = False
    stage_max_tokens: Int | dict[str, Int] | None = None
    timeout: Float | None = Field(None, gt=0, description="Deadline in seconds for the whole "
                                  "request, search included (capped by the server's).")

    @field_validator("messages")
    @classmethod
    def _has_a_user_message(cls, messages: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("messages must contain at least one user message")
        return messages

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOPS or any(not s for s in stops):
            raise ValueError(f"stop takes at most {MAX_STOPS} non-empty strings")
        return stop

    @field_validator("stream_options")
    @classmethod
    def _only_when_streaming(cls, options: StreamOptions | None, info: ValidationInfo
                             ) -> StreamOptions | None:
        if options is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return options

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        if bias and any(not key.isdigit() for key in bias):
            raise ValueError("keys must be token ids, as strings")
        return bias

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, top: int | None, info: ValidationInfo) -> int | None:
        if top is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return top

    @field_validator("chat_template_kwargs")
    @classmethod
    def _not_reserved(cls, kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
        reserved = TEMPLATE_RESERVED & set(kwargs or {})
        if reserved:
            raise ValueError(f"may not set {sorted(reserved)}")
        return kwargs

    @field_validator("stage_max_tokens")
    @classmethod
    def _positive_caps(cls, caps: int | dict[str, int] | None) -> int | dict[str, int] | None:
        if (isinstance(caps, int) and caps < 1) or (isinstance(caps, dict) and any(
                v < 1 for v in caps.values())):
            raise ValueError("stage_max_tokens must be positive")
        return caps

    @model_validator(mode="after")
    def _checks(self) -> ChatCompletionRequest:
        self.answer_constraint()  # at most one, and well formed
        return self

    def _constraint_sources(self) -> list[tuple[str, str, Any]]:
        """(field, kind, value) of every structured-output constraint the request sets."""
        found: list[tuple[str, str, Any]] = []
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_object":
            found.append(("response_format", "json_object", True))
        if fmt is not None and fmt.type == "json_schema":
            if fmt.json_schema is None:
                raise ValueError("response_format json_schema needs its json_schema field")
            schema = fmt.json_schema.schema_
            found.append(("response_format", "json_object", True) if schema is None
                         else ("response_format", "json", schema))
        so = self.structured_outputs
        if so is not None:
            for kind, value in (("json", so.json_), ("regex", so.regex), ("choice", so.choice),
                                ("grammar", so.grammar), ("json_object", so.json_object or None)):
                if value is not None:
                    found.append(("structured_outputs", kind, value))
        for kind, value in (("json", self.guided_json), ("regex", self.guided_regex),
                            ("choice", self.guided_choice), ("grammar", self.guided_grammar)):
            if value is not None:
                found.append((f"guided_{kind}", kind, value))
        return found

    def answer_constraint(self) -> Constraint | None:
        """The one structured-output constraint on the answer stage, if any."""
        found = self._constraint_sources()
        if len(found) > 1:
            raise ValueError("set at most one of response_format, structured_outputs and "
                             f"guided_*; this request sets {[(f, k) for f, k, _ in found]}")
        return _constraint(found[0][1], found[0][2]) if found else None

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def search_seed(self) -> int | None:
        """The seed in the search's range: OpenAI and vLLM take any signed 64-bit seed (and
        vLLM reads -1 as none); a negative one becomes a derived non-negative seed, the same
        every time, so that it reproduces too."""
        if self.seed is None or self.seed >= 0:
            return self.seed
        return derive_seed(self.seed)

    @property
    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def resolved_beam_width(self, settings: Settings) -> int:
        if self.beam_width is not None:
            return self.beam_width
        if self.reasoning_effort in EFFORT_GREEDY:
            return 1
        if self.reasoning_effort in EFFORT_AS_HIGH:
            return settings.effort_width("high")
        if self.reasoning_effort is not None:
            return settings.effort_width(self.reasoning_effort)
        return settings.beam_width

    def search_shape(self, settings: Settings) -> tuple[Selector, SearchShape]:
        """The selector and the shape. A retracing search ranks by the verifier's scores: its
        selector is verify (another one is an error)."""
        shape = self.search or SearchShape.STAGE
        if self.selector == LEGACY_BEST_OF_N and shape is not SearchShape.RETRACE:
            return Selector.JUDGE, SearchShape.BEST_OF_N
        if shape is SearchShape.RETRACE:
            if self.selector not in (None, Selector.VERIFY):
                raise InvalidField("search=retrace keeps the candidates the verifier scores "
                                   "best: its selector is verify (leave selector unset)",
                                   "selector")
            return Selector.VERIFY, shape
        return Selector(self.selector or settings.selector), shape

    def search_budget_of(self, settings: Settings) -> SearchBudget | None:
        """The request's budget in tokens, or else its reasoning_effort preset's in answers
        (where the width is the preset's too)."""
        if self.search_budget is not None:
            return SearchBudget(tokens=self.search_budget)
        effort = "high" if self.reasoning_effort in EFFORT_AS_HIGH else self.reasoning_effort
        if self.beam_width is not None or effort is None or effort in EFFORT_GREEDY:
            return None
        answers = settings.effort_budget(effort)
        return None if answers is None else SearchBudget(answers=answers)

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
        return Conversation(tuple(messages), tuple(images), dict(self.chat_template_kwargs or {}))

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
                raise InvalidField(f"stage_max_tokens names unknown stages {unknown}; "
                                   f"this server's stages are {list(schema.tags)}",
                                   "stage_max_tokens")
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
                            seed=self.search_seed, min_tokens=self.min_tokens,
                            ignore_eos=self.ignore_eos, frequency_penalty=self.frequency_penalty,
                            presence_penalty=self.presence_penalty,
                            logit_bias=tuple((int(k), v) for k, v in
                                             (self.logit_bias or {}).items()),
                            skip_special_tokens=self.skip_special_tokens)
        selector, shape = self.search_shape(settings)
        return SearchParams(
            schema=schema, beam_width=width, selector=selector, shape=shape,
            stage_max_tokens=caps, default_stage_max_tokens=default_cap,
            max_tokens=self.token_budget, sampling=sampling, stop=tuple(self.stop_list),
            stop_token_ids=tuple(self.stop_token_ids or ()),
            constraint=self.answer_constraint(),
            answer_logprobs=(self.top_logprobs or 0) if self.logprobs else None,
            judge_both_orders=settings.judge_both_orders,
            prompted=settings.stage_mode == "prompted", single_call=settings.single_call,
            repetition=RepetitionRule() if settings.repetition_stop else None,
            budget=self.search_budget_of(settings),
            keep=self.retrace_keep or settings.retrace_keep,
            retrace_threshold=(self.retrace_threshold if self.retrace_threshold is not None
                               else settings.retrace_threshold),
            max_retraces=(self.max_retraces if self.max_retraces is not None
                          else settings.max_retraces),
            greedy_candidate=(self.greedy_candidate if self.greedy_candidate is not None
                              else settings.greedy_candidate),
            pipeline=self.pipeline or settings.pipeline)


# --------------------------------------------------------------------------- responses


class StageCandidateOut(BaseModel):
    text: str
    tokens: int
    mean_logprob: float | None
    closed: bool
    score: float | None = Field(None, description="the verifier's probability that this "
                                "candidate is correct, where the selector asked it")
    cleaned: list[str] = Field(default_factory=list, description="what stage text hygiene "
                               "did to the text the model wrote: `stripped <X>` (at its "
                               "start: its own opening tag again, or a closing tag), `cut at "
                               "<Y>` (cut before a tag that does not belong in it), "
                               "`repetition` (a loop: the stage was closed early, after the "
                               "first copy)")
    parent: int | None = Field(None, description="search=retrace: the index of the previous "
                               "stage's candidate this one continues")
    attempt: int | None = Field(None, description="search=retrace: the pass over the stage "
                                "that sampled it (0 the first, one more after each retrace to "
                                "the stage)")


class RetraceOut(BaseModel):
    stage: str = Field(description="the stage whose candidates all scored low")
    best_score: float = Field(description="its best verifier score, below the threshold")
    back_to: str = Field(description="the stage sampled again")


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
    reasoning: str | None = Field(default=None, description="The tagged stages (vLLM's name).")
    reasoning_content: str | None = Field(default=None, description="Alias of `reasoning`, "
                                          "for clients of older vLLM versions.")
    stages: list[StageOut] | None = None
    summary: StageOut | None = Field(default=None, description="reason_summarize pipeline, "
                                     "with return_trace: the summariser's call, whose text is "
                                     "`content`.")
    retraces: list[RetraceOut] | None = Field(default=None, description="search=retrace, "
                                              "with return_trace: each time it went back")


LOGPROB_FLOOR = -9999.0  # JSON has no -inf; OpenAI and vLLM report this instead


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None

    @classmethod
    def of(cls, token: str, logprob: float) -> TopLogprob:
        return cls(token=token, logprob=max(logprob, LOGPROB_FLOOR),
                   bytes=list(token.encode()))


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChoiceLogprobs | None = None


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0
    judge_tokens: int = 0
    summary_tokens: int = 0


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
    reasoning: str | None = None
    reasoning_content: str | None = None  # alias of `reasoning`, for older clients


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: ChoiceLogprobs | None = None


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
