"""The answers file (append, read back, what a rerun skips) and each configuration's summary."""

from pathlib import Path

import pytest

from evaluation.records import AnswerLog, by_config, done, latest, summarise, wilson
from tests.unit.evaluation.fakes import answer


def test_answers_round_trip_and_a_cut_off_line_is_skipped(tmp_path: Path, capsys):
    log = AnswerLog(tmp_path / "sub" / "e.test.answers.jsonl")
    assert log.read() == []
    first = answer("greedy", 0, True, trace=[{"tag": "SUMMARY", "by": "only", "chosen": 0,
                                              "right": [True], "pairs": []}])
    log.append(first)
    with log.path.open("a") as f:  # a crash in the middle of a line
        f.write('{"config": "greedy", "ind')
    second = answer("greedy", 1, False, status=503)
    log.append(second)
    assert log.read() == [first, second]
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    assert log.path.read_text().count("\n") == 3  # the cut-off line was ended, not joined


def test_a_rerun_skips_what_was_answered_and_asks_failures_again():
    history = [answer("greedy", 0, True), answer("greedy", 1, False, status=503),
               answer("bon-vote-4", 0, False, status=0),
               answer("greedy", 1, True),  # the retry of question 1 succeeded
               answer("bon-vote-4", 0, False, status=500)]  # failed again
    assert done(history) == {("greedy", 0), ("greedy", 1)}
    newest = latest(history)
    assert newest[("greedy", 1)].ok and newest[("greedy", 1)].correct
    assert newest[("bon-vote-4", 0)].status == 500
    # a 200 is never replaced by a later failure of the same pair
    assert latest([answer("greedy", 0, True), answer("greedy", 0, False, status=503)])[
        ("greedy", 0)].ok
    groups = by_config(history)
    assert [a.index for a in groups["greedy"]] == [0, 1] and len(groups["bon-vote-4"]) == 1


def test_summary_figures():
    answers = [answer("stage-vote-4", 0, True, tokens=10, run="a", started=100, finished=102),
               answer("stage-vote-4", 1, False, tokens=30, run="a", started=100, finished=104),
               answer("stage-vote-4", 2, True, status=503, run="b", started=200, finished=202),
               answer("stage-vote-4", 3, True, tokens=20, run="b", started=201, finished=202)]
    s = summarise("stage-vote-4", answers)
    assert (s.questions, s.answered, s.right, s.errors) == (4, 3, 2, 1)
    assert s.accuracy == 0.5  # the failed request counts as wrong
    assert (s.ci_low, s.ci_high) == pytest.approx(wilson(2, 4))
    assert s.completion_tokens == 20.0 and s.prompt_tokens == 100.0
    assert s.cached_share == 0.25
    assert s.wall_s_per_question == (4 + 2) / 4  # run a spans 4 s, run b 2 s
    assert s.concurrency == "4"


def test_wilson_interval():
    assert wilson(0, 0) == (0.0, 0.0)
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson(10, 10)[1] == 1.0
