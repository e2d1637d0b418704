"""The accuracy evaluation: its trace bookkeeping on hand-written traces (pure logic), and a
short real run against our server whose figures must agree with each other."""

import json
from pathlib import Path

import pytest

from loadtest.eval import main
from loadtest.eval_judge import SelectionReport, add_answer, mcnemar_p
from loadtest.eval_report import NOTES_MARKER, keep_notes
from tests.loadtest.conftest import OpenAIServer

REFERENCE = {"SUMMARY": "S", "CAPTION": "Top left: red circle.", "REASONING": "R",
             "CONCLUSION": "2"}


def _stage(tag, texts, chosen, comparisons=()):
    return {"tag": tag, "chosen_index": chosen,
            "candidates": [{"text": t} for t in texts],
            "comparisons": [{"first": f, "second": s, "winner": w} for f, s, w in comparisons]}


def test_judge_is_scored_only_on_decisive_comparisons():
    report = SelectionReport("judge-4")
    stages = [
        _stage("SUMMARY", ["S", "S"], 0, [(0, 1, 0)]),  # both right: not decisive
        _stage("CAPTION", ["Top left: red circle.", "Top left: blue circle.",
                           "Top left: none.", "Top left: red circle."], 1,
               [(0, 1, 1), (2, 3, 3), (1, 3, 1)]),  # wrong, right, wrong
        _stage("REASONING", ["R", "x"], 0),  # settled without the judge
        _stage("CONCLUSION", ["two", "3"], 1, [(0, 1, 1)]),
    ]
    add_answer(report, stages, REFERENCE, whole_chains=False)
    assert report.questions == 1 and report.oracle == 1  # "two" is right
    assert (report.judge["CAPTION"].decisive, report.judge["CAPTION"].right) == (3, 1)
    assert "SUMMARY" not in report.judge
    assert (report.judge["CONCLUSION"].decisive, report.judge["CONCLUSION"].right) == (1, 0)
    assert (report.stages_judged, report.stages_with_choice) == (3, 4)


def test_best_of_n_is_scored_on_whole_chains():
    report = SelectionReport("best_of_n-4")
    stages = [_stage("SUMMARY", ["S", "x"], 1),
              _stage("CONCLUSION", ["5", "2", "5"], 0, [(0, 1, 0), (0, 2, 0)])]
    add_answer(report, stages, REFERENCE, whole_chains=True)
    add_answer(report, None, REFERENCE, whole_chains=True)  # a failed request
    assert report.questions == 2 and report.oracle_share == 0.5
    assert dict(report.judge).keys() == {"complete answer"}
    assert (report.judge["complete answer"].decisive, report.judge["complete answer"].right) \
        == (1, 0)


def test_mcnemar_is_exact_and_symmetric():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_p(3, 7) == mcnemar_p(7, 3) == pytest.approx(2 * 176 / 1024)


def test_hand_written_notes_survive_regeneration(tmp_path: Path):
    out = tmp_path / "evaluation.md"
    assert keep_notes(out) == NOTES_MARKER + "\n"
    out.write_text(f"# old table\n{NOTES_MARKER}\nThe judge is weak.\n")
    assert keep_notes(out) == f"{NOTES_MARKER}\nThe judge is weak.\n"


@pytest.mark.e2e
def test_short_evaluation_against_the_real_server(openai_server: OpenAIServer, tmp_path: Path):
    out = tmp_path / "evaluation.md"
    out.write_text(f"{NOTES_MARKER}\nkept\n")
    main(["--base-url", openai_server.base_url, "--model", openai_server.model,
          "--questions", "4", "--concurrency", "4", "--limit-configs", "greedy,judge-2",
          "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    answers, summaries = data["answers"], {s["config"]: s for s in data["summaries"]}
    assert [a["config"] for a in answers] == ["greedy"] * 4 + ["judge-2"] * 4
    assert all(a["status"] == 200 and a["answer"] is not None for a in answers)
    for config, summary in summaries.items():
        mine = [a for a in answers if a["config"] == config]
        assert summary["accuracy"] == sum(a["correct"] for a in mine) / 4
        assert summary["tokens_per_question"] == sum(a["completion_tokens"] for a in mine) / 4
        assert summary["ci_low"] <= summary["accuracy"] <= summary["ci_high"]
    assert summaries["judge-2"]["tokens_per_question"] > summaries["greedy"]["tokens_per_question"]
    report = out.read_text()
    assert "| greedy |" in report and "| judge-2 |" in report and "## Paired comparisons" in report
    assert report.endswith(f"{NOTES_MARKER}\nkept\n")
    assert out.with_suffix(".png").stat().st_size > 1000
