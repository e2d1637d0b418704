"""The summary statistics, against figures worked out by hand."""

import pytest

from loadtest.stats import Outcome, Slo, percentile, rate, summarize


def ok(latency_s: float, ttft_s: float | None = None, tokens: int = 10) -> Outcome:
    return Outcome(ok=True, status=200, latency_s=latency_s, ttft_s=ttft_s, output_tokens=tokens)


def failed(status: int) -> Outcome:
    return Outcome(ok=False, status=status, latency_s=0.5, ttft_s=None, output_tokens=0)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # sorted: 1 2 3 4, ranks 0..3
    assert percentile(values, 50) == pytest.approx(2.5)  # rank 1.5
    assert percentile(values, 90) == pytest.approx(3.7)  # rank 2.7
    assert percentile(values, 99) == pytest.approx(3.97)  # rank 2.97
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0


def test_percentile_of_eleven_values_hits_exact_ranks() -> None:
    values = [float(v) for v in range(10, -1, -1)]  # 0..10, reversed
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 99) == pytest.approx(9.9)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([0.25], 50) == percentile([0.25], 99) == 0.25


def test_percentile_rejects_nothing_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_rate_over_zero_wall_time_is_zero() -> None:
    assert rate(5, 0.0) == 0.0
    assert rate(5, 2.0) == 2.5


def test_summary_counts_throughput_and_errors() -> None:
    outcomes = [ok(1.0, 0.1, 20), ok(2.0, 0.2, 30), ok(3.0, 0.3, 50), ok(4.0, 0.4, 100),
                failed(500), failed(0), failed(500)]
    summary = summarize(outcomes, wall_s=4.0)
    assert (summary.requests, summary.succeeded, summary.failed) == (7, 4, 3)
    assert summary.errors_by_status == {"0": 1, "500": 2}
    assert summary.request_throughput == pytest.approx(1.0)  # 4 successes / 4 s
    assert summary.output_token_throughput == pytest.approx(50.0)  # 200 tokens / 4 s
    assert summary.latency_s is not None and summary.ttft_s is not None
    assert summary.latency_s.mean == pytest.approx(2.5)
    assert summary.latency_s.p50 == pytest.approx(2.5)
    assert summary.latency_s.p90 == pytest.approx(3.7)
    assert summary.ttft_s.p99 == pytest.approx(0.397)


def test_goodput_counts_successes_within_every_slo_bound() -> None:
    outcomes = [ok(1.0, 0.1), ok(2.0, 0.5), ok(3.0, 0.2), ok(5.0, 0.1), failed(429)]
    both = summarize(outcomes, wall_s=2.0, slo=Slo(latency_s=3.0, ttft_s=0.3))
    assert both.slo_met == 2  # 1.0/0.1 and 3.0/0.2; 2.0 misses TTFT, 5.0 misses latency
    assert both.goodput == pytest.approx(1.0)
    latency_only = summarize(outcomes, wall_s=2.0, slo=Slo(latency_s=2.0))
    assert latency_only.slo_met == 2
    assert latency_only.goodput == pytest.approx(1.0)


def test_goodput_without_slo_equals_successful_throughput() -> None:
    summary = summarize([ok(1.0), ok(9.0), failed(503)], wall_s=4.0)
    assert summary.goodput == summary.request_throughput == pytest.approx(0.5)


def test_unstreamed_request_is_judged_by_latency_against_the_ttft_slo() -> None:
    slo = Slo(ttft_s=1.5)
    assert slo.met_by(latency_s=1.0, ttft_s=None)
    assert not slo.met_by(latency_s=2.0, ttft_s=None)
    assert slo.met_by(latency_s=2.0, ttft_s=0.5)


def test_summary_of_only_failures_has_no_distributions() -> None:
    summary = summarize([failed(404), failed(404)], wall_s=1.0)
    assert summary.latency_s is None and summary.ttft_s is None
    assert summary.errors_by_status == {"404": 2}
    assert summary.request_throughput == summary.goodput == 0.0
