"""Summary statistics of one load level. Pure functions of the records; no I/O, no clocks."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True)
class Slo:
    """Service-level objective: a request meets it if every given bound holds (seconds)."""

    latency_s: float | None = None
    ttft_s: float | None = None

    def met_by(self, latency_s: float, ttft_s: float | None) -> bool:
        # Without a measured TTFT (non-streaming) the first token reached the client with the
        # whole response, so the end-to-end latency stands in for it.
        first_token_s = latency_s if ttft_s is None else ttft_s
        if self.latency_s is not None and latency_s > self.latency_s:
            return False
        return self.ttft_s is None or first_token_s <= self.ttft_s


@dataclass(frozen=True)
class Outcome:
    """What the statistics need of one request."""

    ok: bool
    status: int
    latency_s: float
    ttft_s: float | None
    output_tokens: int


@dataclass(frozen=True)
class Distribution:
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution | None:
        if not values:
            return None
        p50, p90, p99 = (percentile(values, q) for q in PERCENTILES)
        return cls(mean=sum(values) / len(values), p50=p50, p90=p90, p99=p99)


@dataclass(frozen=True)
class Summary:
    requests: int
    succeeded: int
    errors_by_status: dict[str, int]
    wall_s: float
    request_throughput: float  # successful requests per second
    output_token_throughput: float  # output tokens of successful requests per second
    goodput: float  # successful requests per second that met the SLO
    slo_met: int
    latency_s: Distribution | None
    ttft_s: Distribution | None

    @property
    def failed(self) -> int:
        return self.requests - self.succeeded


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (the
    default of numpy.percentile): rank = q/100 · (n − 1) in the sorted values."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = q / 100.0 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(count: float, wall_s: float) -> float:
    """count per second over wall_s; zero for an empty or zero-length interval."""
    return count / wall_s if wall_s > 0 else 0.0


def errors_by_status(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Failed requests counted by status code ("0": no complete response, e.g. a timeout)."""
    counts = Counter(str(o.status) for o in outcomes if not o.ok)
    return dict(sorted(counts.items()))


def summarize(outcomes: Sequence[Outcome], wall_s: float, slo: Slo | None = None) -> Summary:
    """Throughputs are per second of wall_s; latency figures cover successful requests only.
    With no SLO bound given, every successful request meets the SLO (goodput = throughput)."""
    slo = slo or Slo()
    good = [o for o in outcomes if o.ok]
    slo_met = sum(1 for o in good if slo.met_by(o.latency_s, o.ttft_s))
    return Summary(
        requests=len(outcomes),
        succeeded=len(good),
        errors_by_status=errors_by_status(outcomes),
        wall_s=wall_s,
        request_throughput=rate(len(good), wall_s),
        output_token_throughput=rate(sum(o.output_tokens for o in good), wall_s),
        goodput=rate(slo_met, wall_s),
        slo_met=slo_met,
        latency_s=Distribution.of([o.latency_s for o in good]),
        ttft_s=Distribution.of([o.ttft_s for o in good if o.ttft_s is not None]),
    )
