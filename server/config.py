"""Server settings: one frozen object, built once at start-up from flags and COT_SERVER_* vars."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.search.params import Selector
from server.search.schema import SCHEMAS, get_schema

DEFAULT_TINY_MODEL = "models/tiny-cot"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COT_SERVER_", frozen=True, extra="forbid")

    # --- model and engine -------------------------------------------------------------
    model: str = Field(DEFAULT_TINY_MODEL, description="Hub id or local path of the VLM to serve "
                       "(default: the tiny offline model trained on shape questions, which "
                       "`python -m tinycot install` writes there).")
    served_model_name: str | None = Field(None, description="Name clients use in `model` "
                                          "(default: the model's folder or hub name).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the engine runs.")
    dtype: str = Field("auto", description="Weights dtype: auto, bfloat16, float16, float32.")
    max_model_len: int | None = Field(None, description="Context length (default: the model's).")
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="Share of accelerator "
                                          "(or, on CPU, NUMA-node) memory the engine may reserve.")
    cpu_kv_cache_gib: int | None = Field(None, ge=1, description="CPU only: KV-cache size in GiB "
                                           "(sets VLLM_CPU_KVCACHE_SPACE).")
    max_num_seqs: int = Field(64, ge=1, description="Most sequences the engine batches at once.")
    enforce_eager: bool = Field(True, description="Skip graph capture (faster start).")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine.")
    trust_remote_code: bool = Field(False, description="Allow model code from the checkpoint.")
    limit_images_per_prompt: int = Field(4, ge=0, description="Most images in one request.")
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
    log_level: str = Field("info", description="Log level.")
    api_key: str | None = Field(None, description="API key(s) that guard every /v1 route, "
                                "comma-separated; clients send `Authorization: Bearer KEY`.")
    metrics_api_key: str | None = Field(None, description="If set, /metrics needs this key.")
    max_concurrent_requests: int = Field(64, ge=1, description="Chat completions served at "
                                         "once; more wait in the queue.")
    max_queued_requests: int = Field(256, ge=0, description="Chat completions that may wait "
                                     "for a slot; beyond it: 429 with Retry-After.")
    request_timeout: float = Field(600.0, gt=0, description="Longest a chat completion may "
                                   "take, search included.")
    drain_timeout: float = Field(30.0, ge=0, description="Seconds in-flight requests may take "
                                 "to finish after SIGTERM.")

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
    search_temperature: float = Field(0.6, ge=0, le=2, description="Candidate temperature when "
                                      "beam_width > 1 and the request sets none.")
    search_top_p: float = Field(0.9, gt=0, le=1, description="Candidate top_p when beam_width "
                                "> 1 and the request sets none.")
    judge_both_orders: bool = Field(True, description="Judge each pair in both orders "
                                    "(counters position bias; twice the judge calls).")
    effort_low: int = Field(1, ge=1, le=16, description="beam_width for reasoning_effort=low.")
    effort_medium: int = Field(2, ge=1, le=16, description="beam_width for "
                               "reasoning_effort=medium.")
    effort_high: int = Field(4, ge=1, le=16, description="beam_width for reasoning_effort=high.")
    block_size: int | None = Field(None, ge=1, description="KV-cache block size (default: "
                                   "32 on CPU for finer prefix-cache reuse, vLLM's on GPU).")
    max_n: int = Field(4, ge=1, description="Most choices (`n`) in one request.")

    @field_validator("stage_schema")
    @classmethod
    def _known_schema(cls, value: str) -> str:
        get_schema(value)
        return value

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model.rstrip("/").split("/")[-1]

    @property
    def api_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in (self.api_key or "").split(",") if k.strip())

    def effort_width(self, effort: str) -> int:
        return {"low": self.effort_low, "medium": self.effort_medium,
                "high": self.effort_high}[effort]
