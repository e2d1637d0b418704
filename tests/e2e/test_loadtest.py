"""Short runs against a real OpenAI-compatible server (the session's `server` fixture): the
figures must be sane and consistent with each other, and the files must be written."""

import json
from pathlib import Path

import pytest

from loadtest import LoadConfig, run_load
from loadtest.cli import main
from loadtest.servers import ServerProcess
from loadtest.workload import procedural_items

pytestmark = pytest.mark.e2e
MAX_TOKENS = 96  # the whole staged answer (4 stages x the server's 16-token cap) fits


def assert_ordered(distribution: dict) -> None:
    assert 0 < distribution["p50"] <= distribution["p90"] <= distribution["p99"]


def test_closed_loop_run_reports_consistent_figures(server: ServerProcess,
                                                    tmp_path: Path) -> None:
    status = main([
        "--base-url", server.base_url, "--model", server.model,
        "--concurrency", "2", "--requests", "6", "--max-tokens", str(MAX_TOKENS),
        "--warmup", "1", "--num-images", "4", "--image-sizes", "64,256",
        "--slo-latency", "60", "--slo-ttft", "60", "--timeout", "60",
        # the trace streams as each stage is chosen, so every request has a first token
        "--extra-body", '{"return_trace": true}',
        "--out", str(tmp_path), "--no-progress"])
    assert status == 0
    result = json.loads((tmp_path / "results.json").read_text())
    [level] = result["levels"]
    summary, records = level["summary"], level["records"]

    assert len(records) == summary["requests"] == summary["succeeded"] == 6
    assert [r["index"] for r in records] == list(range(6))
    assert all(r["status"] == 200 and r["ok"] for r in records)
    assert summary["errors_by_status"] == {}
    assert len(result["warmup_records"]) == 1

    assert_ordered(summary["latency_s"])
    assert_ordered(summary["ttft_s"])
    assert all(0 < r["ttft_s"] <= r["latency_s"] for r in records)
    assert summary["latency_s"]["p99"] <= max(r["latency_s"] for r in records)

    wall = summary["wall_s"]
    last_end = max(r["start_s"] + r["latency_s"] for r in records)
    assert last_end <= wall < last_end + 0.5
    assert wall <= sum(r["latency_s"] for r in records)  # two at a time, never slower than one
    assert summary["request_throughput"] == pytest.approx(6 / wall)

    tokens = [r["output_tokens"] for r in records]
    assert all(0 < t <= MAX_TOKENS for t in tokens)
    assert summary["output_token_throughput"] == pytest.approx(sum(tokens) / wall)
    assert summary["slo_met"] == 6
    assert summary["goodput"] == pytest.approx(summary["request_throughput"])

    assert "| c=2 | 6 | 6 | none |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "latency_vs_throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_open_loop_without_streaming_through_the_api(server: ServerProcess) -> None:
    config = LoadConfig(
        base_url=server.base_url + "/v1", model=server.model, rates=(20.0,),
        requests=4, warmup=0, max_tokens=MAX_TOKENS, stream=False, timeout_s=60,
        items=tuple(procedural_items(2, seed=5, sizes=(128,))), progress=False)
    result = await run_load(config)
    [level] = result.levels
    assert level.level.label == "rate=20/s"
    assert [r.status for r in level.records] == [200] * 4
    assert all(r.ttft_s is None and 0 < (r.output_tokens or 0) <= MAX_TOKENS
               for r in level.records)
    assert level.summary.ttft_s is None and level.summary.succeeded == 4
