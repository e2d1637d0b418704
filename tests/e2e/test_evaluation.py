"""A short evaluation run against our real server: every answer is recorded, the figures agree
with each other and with the answers file, the files are written, and a rerun asks nothing."""

import json
from pathlib import Path

import pytest

from evaluation.notes import NOTES_MARKER
from evaluation.run import main
from evaluation.scoring import is_decisive
from loadtest.servers import ServerProcess

CONFIGS = ("greedy", "stage-verify-2", "bon-vote-2", "retrace-verify-2", "effort-medium-vote")
TAGS = ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]


@pytest.mark.e2e
def test_short_evaluation_against_the_real_server(server: ServerProcess, tmp_path: Path):
    out = tmp_path / "evaluation.md"
    out.write_text(f"{NOTES_MARKER}\nkept\n")
    argv = ["--base-url", server.base_url, "--model", server.model, "--questions", "4",
            "--concurrency", "4", "--configs", ",".join(CONFIGS), "--out", str(out),
            "--no-progress"]
    main(argv)

    answers_file = tmp_path / "evaluation.test.answers.jsonl"
    lines = [json.loads(line) for line in answers_file.read_text().splitlines()]
    assert sorted((a["config"], a["index"]) for a in lines) == sorted(
        (c, i) for c in CONFIGS for i in range(4))
    assert all(a["status"] == 200 and a["answer"] is not None and a["trace"] for a in lines)
    assert len({a["seed"] for a in lines}) == 4  # one seed per question, whatever the config

    figures = json.loads(out.with_suffix(".json").read_text())
    summaries = {s["config"]: s for s in figures["summaries"]}
    assert list(summaries) == ["greedy", "bon-vote-2", "stage-verify-2", "effort-medium-vote",
                               "retrace-verify-2"]
    for config, summary in summaries.items():
        mine = [a for a in lines if a["config"] == config]
        selection = figures["selection"][config]
        assert summary["questions"] == summary["answered"] == 4 and summary["errors"] == 0
        assert summary["right"] == sum(a["correct"] for a in mine)
        assert summary["accuracy"] == summary["right"] / 4
        assert summary["completion_tokens"] == sum(a["completion_tokens"] for a in mine) / 4
        assert summary["ci_low"] <= summary["accuracy"] <= summary["ci_high"]
        assert 0 <= summary["cached_share"] <= 1
        # the chosen answer is one of the final candidates: the oracle is at least the accuracy
        assert summary["right"] <= selection["oracle"] <= 4
        for tally in selection["decisive"].values():
            assert 0 <= tally["right"] <= tally["n"]
        assert sum(selection["decisive_by_method"][m]["n"]
                   for m in selection["decisive_by_method"]) == sum(
            t["n"] for t in selection["decisive"].values())

    greedy = [a for a in lines if a["config"] == "greedy"]
    assert all([f["tag"] for f in a["trace"]] == TAGS and all(len(f["right"]) == 1
               for f in a["trace"]) for a in greedy)
    assert figures["selection"]["greedy"]["oracle"] == summaries["greedy"]["right"]
    assert figures["selection"]["greedy"]["decisive"] == {}
    for a in (a for a in lines if a["config"] == "stage-verify-2"):
        assert [f["tag"] for f in a["trace"]] == TAGS
        assert all(f["by"] in ("verify", "only") and len(f["right"]) <= 2 for f in a["trace"])
    for a in (a for a in lines if a["config"] == "bon-vote-2"):
        assert [f["tag"] for f in a["trace"]] == ["chains"] and len(a["trace"][0]["right"]) == 2
    # search costs tokens; the verifier's verdicts are counted, a vote asks the engine nothing
    assert summaries["stage-verify-2"]["completion_tokens"] > summaries["greedy"][
        "completion_tokens"]
    assert summaries["bon-vote-2"]["completion_tokens"] > summaries["greedy"]["completion_tokens"]
    decisive = any(is_decisive(f["right"]) for a in lines if a["config"] == "stage-verify-2"
                   for f in a["trace"])  # two different candidates: the verifier was asked
    assert summaries["stage-verify-2"]["judge_tokens"] > 0 or not decisive
    assert summaries["bon-vote-2"]["judge_tokens"] == 0
    assert len(figures["targets"]) == 6
    # a retracing search's records keep its retraces (a list, maybe empty); the others none
    assert all(isinstance(a["retraces"], list) for a in lines if a["config"] == "retrace-verify-2")
    assert all(a["retraces"] is None for a in lines if a["config"] != "retrace-verify-2")
    for a in (a for a in lines if a["config"] == "effort-medium-vote"):
        assert all(1 <= len(f["right"]) <= 4 for f in a["trace"])

    report = out.read_text()
    for name in CONFIGS:
        assert f"| {name} | 4 |" in report
    for section in ("## How to reproduce", "## What the selectors chose", "## Paired tests",
                    "## Targets"):
        assert section in report
    assert report.endswith(f"{NOTES_MARKER}\nkept\n")
    assert out.with_suffix(".png").stat().st_size > 1000

    before = answers_file.read_text()
    main(argv)  # everything is answered: nothing is asked again
    assert answers_file.read_text() == before
    assert out.read_text() == report
