"""What one load-test run does: target, workload, load levels, bounds, SLO."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from loadtest.stats import Slo
from loadtest.workload import DEFAULT_IMAGE_SIZES, WorkItem

DEFAULT_REQUESTS = 100


@dataclass(frozen=True)
class Level:
    """One load level of a sweep: a closed loop at `value` concurrent requests, or an open
    loop with Poisson arrivals at `value` requests per second."""

    mode: Literal["closed", "open"]
    value: float

    @property
    def label(self) -> str:
        return f"c={int(self.value)}" if self.mode == "closed" else f"rate={self.value:g}/s"


@dataclass(frozen=True)
class LoadConfig:
    base_url: str  # with or without the trailing /v1
    model: str
    concurrency: tuple[int, ...] = (1,)
    rates: tuple[float, ...] = ()  # when given: open loop at each rate; concurrency is unused
    max_connections: int = 256  # connection-pool size (and in-flight cap) of the open loop
    requests: int | None = None  # per level; DEFAULT_REQUESTS when neither bound is given
    duration_s: float | None = None  # per level: no request starts after this many seconds
    warmup: int = 2
    max_tokens: int = 128
    stream: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 120.0
    slo: Slo = field(default_factory=Slo)
    seed: int = 0
    num_items: int = 64  # procedural items, reused round-robin
    image_sizes: tuple[int, ...] = DEFAULT_IMAGE_SIZES
    dataset: str | None = None  # JSONL of {image, question}; replaces the procedural items
    items: tuple[WorkItem, ...] = ()  # given directly (programmatic use); replaces both
    api_key: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if any(c < 1 for c in self.concurrency) or not (self.concurrency or self.rates):
            raise ValueError("concurrency levels must be positive")
        if any(r <= 0 for r in self.rates):
            raise ValueError("rates must be positive")
        for name in ("requests", "duration_s"):
            bound = getattr(self, name)
            if bound is not None and bound <= 0:
                raise ValueError(f"{name} must be positive")
        if self.timeout_s <= 0 or self.max_tokens < 1 or self.warmup < 0:
            raise ValueError("timeout_s and max_tokens must be positive, warmup non-negative")

    @property
    def request_bound(self) -> int | None:
        if self.requests is None and self.duration_s is None:
            return DEFAULT_REQUESTS
        return self.requests

    @property
    def levels(self) -> list[Level]:
        if self.rates:
            return [Level("open", r) for r in self.rates]
        return [Level("closed", c) for c in self.concurrency]

    @property
    def chat_url(self) -> str:
        base = self.base_url.rstrip("/")
        return f"{base}/chat/completions" if base.endswith("/v1") else (
            f"{base}/v1/chat/completions")

    def pool_size(self, level: Level) -> int:
        return int(level.value) if level.mode == "closed" else self.max_connections

    def request_body(self, item: WorkItem) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": item.messages(),
                                "max_tokens": self.max_tokens, "stream": self.stream}
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return body | self.extra_body

    def public_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values, without the items and the API key."""
        return {
            "base_url": self.base_url, "model": self.model, "levels": [
                {"mode": lv.mode, "value": lv.value} for lv in self.levels],
            "max_connections": self.max_connections, "requests": self.request_bound,
            "duration_s": self.duration_s, "warmup": self.warmup,
            "max_tokens": self.max_tokens, "stream": self.stream,
            "extra_body": self.extra_body, "timeout_s": self.timeout_s,
            "slo": {"latency_s": self.slo.latency_s, "ttft_s": self.slo.ttft_s},
            "seed": self.seed, "workload": self.workload_description,
        }

    @property
    def workload_description(self) -> str:
        if self.items:
            return f"{len(self.items)} given items"
        if self.dataset:
            return f"JSONL {self.dataset}"
        sizes = ",".join(str(s) for s in self.image_sizes)
        return f"{self.num_items} procedural images (sizes {sizes}, seed {self.seed})"
