"""Server settings: one frozen object, built once at start-up from flags and COT_SERVER_* vars.

The server's own options are fields with a flag and an environment variable each. vLLM's engine
arguments are not re-listed here: `cot-server serve` takes them with vLLM's own parser, exactly
as `vllm serve` does, and they arrive in `engine` (the ones given, by AsyncEngineArgs name);
server/engine.py adds the server's defaults. The few engine facts the server reads itself (the
image limit, trust_remote_code, the OTLP traces endpoint) are read from there, so each lives in
one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from server.search.params import Pipeline, Selector
from server.search.schema import SCHEMAS, get_schema

DEFAULT_TINY_MODEL = "models/tiny-cot"
DEFAULT_IMAGES_PER_PROMPT = 4
ENGINE_FIELD = "engine"  # vLLM's flags, not a flag or an environment variable of its own


class _WithoutEngine(PydanticBaseSettingsSource):
    """An environment source that leaves out `engine`: engine arguments are vLLM's flags, which
    have no environment variables (as with `vllm serve`), so there is one way to give each."""

    def __init__(self, source: PydanticBaseSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self._source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the wrapped source

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._source().items() if k != ENGINE_FIELD}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COT_SERVER_", frozen=True, extra="forbid")

    # --- model and engine -------------------------------------------------------------
    model: str = Field(DEFAULT_TINY_MODEL, description="Hub id or local path of the VLM to serve "
                       "(default: the tiny offline model trained on shape questions, which "
                       "`python -m tinycot install` writes there).")
    served_model_name: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Names clients use in `model` (several: aliases, comma-separated in "
        "the environment variable); responses report the first (default: --model as given).")
    chat_template: str | None = Field(None, description="Chat template to use instead of the "
                                      "checkpoint's: a file, or the template itself (as "
                                      "`vllm serve --chat-template`).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the engine runs.")
    cpu_kv_cache_gib: int | None = Field(None, ge=1, description="CPU only: KV-cache size in GiB "
                                           "(sets VLLM_CPU_KVCACHE_SPACE).")
    cpu_engine_core_nice: int = Field(0, ge=0, le=19, description="CPU only: niceness of "
                                      "vLLM's engine-core process, which busy-waits while the "
                                      "model worker computes. 0 (the default) leaves it as vLLM "
                                      "starts it, as upstream's server does; above 0 it yields "
                                      "its core to this process, which costs throughput (about "
                                      "10 % at 10 on 2 cores, docs/deployment.md).")
    engine: Annotated[Mapping[str, Any], NoDecode] = Field(
        default_factory=dict, description="vLLM engine arguments given as `vllm serve` flags, "
        "by AsyncEngineArgs field name; the server's defaults are added by server/engine.py.")
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1, description="Largest encoded image.")
    max_image_pixels: int = Field(4096 * 4096, ge=1, description="Largest image (width x "
                                  "height), checked before decoding.")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Largest request body.")
    remote_images: bool = Field(False, description="Fetch http(s) image URLs (only from "
                                "--remote-image-domains, only public addresses); off: data: "
                                "URLs only.")
    remote_image_domains: str = Field("", description="Hosts remote images may come from, "
                                      "comma-separated; each allows itself and its subdomains "
                                      "(`*`: any public host).")
    remote_image_timeout: float = Field(10.0, gt=0, description="Seconds one remote image "
                                        "may take to resolve and download.")

    # --- HTTP ---------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind.")
    log_level: str = Field("info", description="Log level of the server, uvicorn and, when "
                           "given, vLLM (otherwise VLLM_LOGGING_LEVEL sets vLLM's).")
    log_format: Literal["text", "json"] = Field("text", description="text: readable lines; "
                                                "json: one JSON object per line, with the "
                                                "request id (uvicorn's and vLLM's too).")
    api_key: str | None = Field(None, description="API key(s) that guard every /v1 route, "
                                "comma-separated; clients send `Authorization: Bearer KEY`.")
    metrics_api_key: str | None = Field(None, description="If set, /metrics needs this key.")
    max_concurrent_requests: int = Field(64, ge=1, description="Chat completions served at "
                                         "once; more wait in the queue.")
    max_queued_requests: int = Field(256, ge=0, description="Chat completions that may wait "
                                     "for a slot; beyond it: 429 with Retry-After.")
    max_concurrent_sequences: int | None = Field(
        None, ge=1, description="Engine sequences the chat completions served at once may "
        "weigh together, each n x beam_width (its candidates per stage; its selector's "
        "one-token calls are as many at most); more wait in the queue. Unset: requests only "
        "(docs/deployment.md has the arithmetic).")
    max_queued_sequences: int | None = Field(
        None, ge=0, description="Engine sequences the chat completions waiting for a slot may "
        "weigh together; beyond it: 429 with Retry-After. Unset: requests only.")
    request_timeout: float = Field(600.0, gt=0, description="Longest a chat completion may "
                                   "take, search included.")
    stream_keepalive: float = Field(15.0, gt=0, description="Seconds between SSE keep-alive "
                                    "comments while a streamed search has nothing new.")
    drain_timeout: float = Field(30.0, ge=0, description="Seconds in-flight requests may take "
                                 "to finish after SIGTERM.")
    engine_dead_grace: float = Field(5.0, ge=0, description="After the engine dies: seconds "
                                     "the server keeps answering 503 (/health, /ready, new "
                                     "requests; requests in flight have failed at once) "
                                     "before it exits with status 1 to be restarted.")
    warmup: bool = Field(True, description="Before /ready turns 200, run a few searches "
                         "down every engine path a request can take (image, n > 1 sampling, "
                         "the one-token judge and verify calls, logprobs, structured output), "
                         "so the first request costs what later ones do; --no-warmup: ready "
                         "as soon as the model is loaded.")

    # --- staged answers and search ----------------------------------------------------
    stage_mode: Literal["native", "prompted"] = Field("native", description="native: the model "
                                                      "was trained on the stage format; prompted: "
                                                      "add a format instruction.")
    stage_schema: str = Field("llava-cot", description="Stage schema: " + ", ".join(SCHEMAS)
                              + " (llava-cot: 4 stages).")
    stage_max_tokens: int = Field(128, ge=1, description="Default token cap of each stage.")
    beam_width: int = Field(1, ge=1, le=16, description="Default candidates per stage.")
    selector: Selector = Field(Selector.JUDGE, description="Default selector: "
                               + ", ".join(Selector) + ".")
    pipeline: Pipeline = Field(Pipeline.SEARCH, description="Default pipeline: search (the "
                               "search's answer stage answers) or reason_summarize (the search "
                               "reasons, a summariser call reads its chain and answers).")
    search_temperature: float = Field(0.6, ge=0, le=2, description="Candidate temperature when "
                                      "beam_width > 1 and the request sets none.")
    search_top_p: float = Field(0.9, gt=0, le=1, description="Candidate top_p when beam_width "
                                "> 1 and the request sets none.")
    judge_both_orders: bool = Field(True, description="Judge each pair in both orders "
                                    "(counters position bias; twice the judge calls).")
    single_call: bool = Field(True, description="Generate a width-1 answer (greedy, each "
                              "best-of-N chain) in one engine call, cut into stages as it "
                              "decodes; --no-single-call: one call per stage.")
    repetition_stop: bool = Field(True, description="Close a stage early when it loops: the "
                                  "same 1-32 words at least 3 times in a row over 12 words or "
                                  "more, or the same 1-4 characters 16 times; its text keeps "
                                  "the first copy, the engine stops decoding it, and its "
                                  "trace says `repetition`; --no-repetition-stop: a looping "
                                  "stage runs to its cap.")
    effort_low: int = Field(1, ge=1, le=16, description="beam_width for reasoning_effort=low.")
    effort_medium: int = Field(4, ge=1, le=16, description="beam_width for "
                               "reasoning_effort=medium.")
    effort_high: int = Field(4, ge=1, le=16, description="beam_width for reasoning_effort=high.")
    effort_budget_low: float | None = Field(None, gt=0, description="Search budget of "
                                            "reasoning_effort=low, in answers (times what one "
                                            "candidate per stage costs); none: no budget.")
    effort_budget_medium: float | None = Field(2.0, gt=0, description="Search budget of "
                                               "reasoning_effort=medium, in answers: the search "
                                               "widens only where candidates disagree, within "
                                               "it.")
    effort_budget_high: float | None = Field(None, gt=0, description="Search budget of "
                                             "reasoning_effort=high, in answers; none: the "
                                             "full width at every stage.")
    retrace_keep: int = Field(2, ge=1, le=16, description="search=retrace: candidates of each "
                              "stage that go on (each branching again).")
    retrace_threshold: float = Field(0.4, ge=0, le=1, description="search=retrace: a stage "
                                     "whose best verifier score is below this sends the search "
                                     "back a stage.")
    max_retraces: int = Field(3, ge=0, le=16, description="search=retrace: the most times one "
                              "search goes back.")
    greedy_candidate: bool = Field(False, description="When searching, one of each stage's "
                                   "candidates (best-of-N: the first answer) is the greedy one, "
                                   "the others sampled.")
    max_n: int = Field(4, ge=1, description="Most choices (`n`) in one request.")

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' sources, in its order, with `engine` only from the command line."""
        return (init_settings, _WithoutEngine(env_settings), _WithoutEngine(dotenv_settings),
                file_secret_settings)

    @classmethod
    def flag_fields(cls) -> dict[str, FieldInfo]:
        """The server's own options: each a flag of `cot-server serve` and a COT_SERVER_*
        variable (everything but `engine`, which holds vLLM's flags)."""
        return {n: f for n, f in cls.model_fields.items() if n != ENGINE_FIELD}

    @field_validator("stage_schema")
    @classmethod
    def _known_schema(cls, value: str) -> str:
        get_schema(value)
        return value

    @field_validator("effort_budget_low", "effort_budget_medium", "effort_budget_high",
                     mode="before")
    @classmethod
    def _no_budget(cls, value: object) -> object:
        """`none` (a flag, the environment, the chart's `"none"`) unsets a preset's budget."""
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    @field_validator("served_model_name", mode="before")
    @classmethod
    def _names(cls, value: str | Sequence[str]) -> tuple[str, ...]:
        """Flags give a list (`--served-model-name a b`), the environment a comma-separated
        string."""
        names = value.split(",") if isinstance(value, str) else value
        return tuple(n.strip() for n in names if n.strip())

    @field_validator(ENGINE_FIELD)
    @classmethod
    def _own_copy(cls, value: Mapping[str, Any]) -> dict[str, Any]:
        """A copy, so that the caller's dict cannot change frozen settings afterwards."""
        return dict(value)

    @property
    def served_names(self) -> tuple[str, ...]:
        """Every name a request may use; like `vllm serve`, --model as given when none is set."""
        return self.served_model_name or (self.model,)

    @property
    def model_name(self) -> str:
        """The name responses report: the first served name."""
        return self.served_names[0]

    @property
    def limit_images_per_prompt(self) -> int:
        """Most images in one request: the image entry of vLLM's --limit-mm-per-prompt (a count
        or {"count": N, ...}), which the engine gets too."""
        limits = self.engine.get("limit_mm_per_prompt") or {}
        limit = limits.get("image", DEFAULT_IMAGES_PER_PROMPT)
        return int(limit["count"] if isinstance(limit, Mapping) else limit)

    @property
    def trust_remote_code(self) -> bool:
        """vLLM's --trust-remote-code, which loading the processor's chat template obeys too."""
        return bool(self.engine.get("trust_remote_code", False))

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """vLLM's --otlp-traces-endpoint: where the server sends its request spans too (the
        engine gets the flag as well and traces to the same collector); None: no tracing."""
        endpoint = self.engine.get("otlp_traces_endpoint")
        return str(endpoint) if endpoint else None

    @property
    def api_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in (self.api_key or "").split(",") if k.strip())

    def effort_width(self, effort: str) -> int:
        return {"low": self.effort_low, "medium": self.effort_medium,
                "high": self.effort_high}[effort]

    def effort_budget(self, effort: str) -> float | None:
        """The preset's search budget, in answers (None: no budget)."""
        return {"low": self.effort_budget_low, "medium": self.effort_budget_medium,
                "high": self.effort_budget_high}[effort]
