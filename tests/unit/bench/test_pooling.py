"""The benchmark alternates compared loads and pools each load's runs (pure logic over
hand-made run results; no server)."""

import pytest

from bench.run import alternate, figures
from loadtest.client import RequestRecord
from loadtest.config import Level
from loadtest.runner import LevelResult
from loadtest.stats import summarize


def _level(latencies: list[float], wall_s: float, failed: int = 0) -> LevelResult:
    records = [RequestRecord(i, "c1", 0.0, t, None, 200, 10) for i, t in enumerate(latencies)]
    records += [RequestRecord(len(records) + i, "c1", 0.0, 1.0, None, 503, None, error="busy")
                for i in range(failed)]
    return LevelResult(Level("closed", 1), records, wall_s,
                       summarize([r.outcome() for r in records], wall_s))


def test_runs_are_pooled_by_total_time_and_failures_counted():
    pooled = figures([_level([1.0, 2.0], 4.0), _level([3.0, 4.0, 5.0], 6.0, failed=1)])
    assert pooled["rps"] == pytest.approx(5 / 10)  # successes over the runs' summed wall time
    assert pooled["p50"] == 3.0 and pooled["tokens"] == 10
    assert pooled["failed"] == 1 and pooled["runs"] == 2 and pooled["errors"] == ["busy"]


def test_compared_loads_take_turns():
    order: list[str] = []

    def run(name: str, latency: float):
        def go() -> LevelResult:
            order.append(name)
            return _level([latency], 1.0)
        return go

    result = alternate({"a": run("a", 1.0), "b": run("b", 2.0)}, rounds=3)
    assert order == ["a", "b"] * 3
    assert result["a"]["runs"] == result["b"]["runs"] == 3
    assert (result["a"]["p50"], result["b"]["p50"]) == (1.0, 2.0)


def test_a_model_folder_marked_prompted_is_served_in_prompted_mode(tmp_path):
    from bench.run import model_flags

    assert model_flags(str(tmp_path)) == []  # a plain checkpoint: the server's default
    (tmp_path / "cot_server_model.json").write_text('{"stage_mode": "prompted", "seed": 1}')
    assert model_flags(str(tmp_path)) == ["--stage-mode", "prompted"]
    (tmp_path / "cot_server_model.json").write_text('{"stage_mode": "native"}')
    assert model_flags(str(tmp_path)) == ["--stage-mode", "native"]
