"""The run loop against a FAKE server (an httpx mock transport, `fakes.FakeServer`): requests,
seeds, retries, the answers file, resuming, the validation split and the written files."""

import json
from functools import partial
from pathlib import Path

import httpx
import pytest

from evaluation import run
from evaluation.notes import NOTES_MARKER
from evaluation.records import AnswerLog
from evaluation.run import examples_for, main, paths_for, request_seed
from tests.unit.evaluation.fakes import FakeServer
from tinycot.onpolicy import wait_ready

CONFIGS = "greedy,stage-verify-2,bon-vote-2"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(run, "backoff", lambda attempt, retry_after=None: 0.0)
    monkeypatch.setattr(run, "wait_ready", partial(wait_ready, every=0.01))


def evaluate(out: Path, fake, *extra: str):
    return main(["--questions", "6", "--configs", CONFIGS, "--concurrency", "3", "--retries",
                 "2", "--out", str(out), "--no-progress", *extra], httpx.MockTransport(fake))


def test_a_run_records_every_answer_and_a_rerun_asks_only_what_failed(tmp_path: Path):
    out = tmp_path / "evaluation.md"
    out.write_text(f"# old\n{NOTES_MARKER}\nkept\n")
    examples = examples_for("test", 6, 0)
    # question 1: a 503 and a dropped connection, then an answer; 2: a 500 (not retried);
    # 4: 429 on every attempt (three with --retries 2). Greedy is asked first and meets them.
    fake = FakeServer(examples, failures={1: [503, 0], 2: [500], 4: [429, 429, 429]})
    evaluate(out, fake)
    assert len(fake.bodies) == 18 + 2 + 2
    log = AnswerLog(tmp_path / "evaluation.test.answers.jsonl")
    first = log.read()
    assert len(first) == 18
    greedy = {a.index: a for a in first if a.config == "greedy"}
    assert greedy[1].ok and greedy[1].attempts == 3
    assert (greedy[2].status, greedy[2].attempts, greedy[2].answer) == (500, 1, None)
    assert (greedy[4].status, greedy[4].attempts) == (429, 3)
    assert all(a.ok for a in first if a.config != "greedy")
    # the same seed for a question under every configuration, another for each question
    for a in first:
        assert a.seed == request_seed(0, "test", a.index)
        assert a.question == examples[a.index].question
        assert a.expected == examples[a.index].conclusion
    assert len({request_seed(0, "test", i) for i in range(6)}) == 6
    assert {(b["beam_width"], b.get("search")) for b in fake.bodies} == {
        (1, None), (2, "stage"), (2, "best_of_n")}
    bon = [b for b in fake.bodies if b.get("search") == "best_of_n"]
    assert {(b["beam_width"], b["selector"], b["return_trace"]) for b in bon} == {
        (2, "vote", True)}
    assert all("selector" not in b for b in fake.bodies if b["beam_width"] == 1)

    # the rerun asks the two failures only, and reports from the whole file
    fake.bodies.clear()
    results = evaluate(out, fake)
    assert sorted(b["seed"] for b in fake.bodies) == sorted(
        request_seed(0, "test", i) for i in (2, 4))
    assert len(log.read()) == 20
    assert results.summaries["greedy"].errors == 0
    assert results.summaries["greedy"].questions == 6

    # a third time: nothing to ask
    fake.bodies.clear()
    evaluate(out, fake)
    assert fake.bodies == []

    report = out.read_text()
    for section in ("## How to reproduce", "## Accuracy and compute", "## What the selectors "
                    "chose", "## Paired tests", "## Targets"):
        assert section in report
    assert "--configs greedy,bon-vote-2,stage-verify-2" in report
    assert report.endswith(f"{NOTES_MARKER}\nkept\n") and "# old" not in report
    figures = json.loads(out.with_suffix(".json").read_text())
    assert [s["config"] for s in figures["summaries"]] == ["greedy", "bon-vote-2",
                                                           "stage-verify-2"]
    assert len(figures["targets"]) == 6
    assert out.with_suffix(".png").stat().st_size > 1000


def test_figures_agree_with_the_answers(tmp_path: Path):
    out = tmp_path / "e.md"
    results = evaluate(out, FakeServer(examples_for("test", 6, 0)))
    lines = AnswerLog(tmp_path / "e.test.answers.jsonl").read()
    for name, summary in results.summaries.items():
        mine = [a for a in lines if a.config == name]
        assert summary.right == sum(a.correct for a in mine)
        assert summary.completion_tokens == sum(a.completion_tokens or 0 for a in mine) / 6
        assert results.selection[name].oracle_share >= summary.accuracy


def test_answers_of_another_run_are_refused(tmp_path: Path):
    out = tmp_path / "evaluation.md"
    fake = FakeServer(examples_for("test", 6, 0))
    evaluate(out, fake)
    with pytest.raises(SystemExit, match="another run"):
        evaluate(out, FakeServer(examples_for("test", 6, 1)), "--seed", "1")
    with pytest.raises(SystemExit, match="another run"):
        evaluate(out, fake, "--model", "other")


def test_the_validation_split_is_reported_apart_and_picks_the_best(tmp_path: Path):
    out = tmp_path / "evaluation.md"
    validation = examples_for("validation", 6, 0)
    assert [e.question for e in validation] != [e.question for e in examples_for("test", 6, 0)]
    main(["--split", "validation", "--questions", "6", "--configs", "greedy,stage-vote-4",
          "--out", str(out), "--no-progress"], httpx.MockTransport(FakeServer(validation)))
    assert not out.exists()
    report = (tmp_path / "evaluation.validation.md").read_text()
    assert report.startswith("# Validation run (for tuning: not the reported result)")
    assert "--split validation" in report
    assert (tmp_path / "evaluation.validation.answers.jsonl").exists()
    assert (tmp_path / "evaluation.validation.png").exists()
    main(["--questions", "6", "--configs", "greedy,stage-vote-4", "--out", str(out),
          "--no-progress"], httpx.MockTransport(FakeServer(examples_for("test", 6, 0))))
    assert "picked as the best on the validation split" in out.read_text()


def test_a_run_waits_for_a_starting_server_to_be_ready(tmp_path: Path):
    fake = FakeServer(examples_for("test", 6, 0))
    fake.not_ready_for = 3  # a server whose engine is still loading answers /ready with 503
    polls_at_first_question = []
    answer = fake.__call__

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/ready" and not polls_at_first_question:
            polls_at_first_question.append(fake.ready_polls)
        return answer(request)

    evaluate(tmp_path / "evaluation.md", server)
    assert polls_at_first_question == [4]  # asked only once /ready said 200
    assert all(a.ok for a in AnswerLog(tmp_path / "evaluation.test.answers.jsonl").read())
    fake.ready_polls, fake.not_ready_for = 0, 10**6
    with pytest.raises(SystemExit, match="not ready within"):
        evaluate(tmp_path / "other.md", fake, "--ready-timeout", "0.05")


def test_report_only_asks_nothing(tmp_path: Path):
    out = tmp_path / "evaluation.md"
    evaluate(out, FakeServer(examples_for("test", 6, 0)))
    out.unlink()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("asked the server")

    evaluate(out, refuse, "--report-only")
    assert "| stage-verify-2 |" in out.read_text()
    with pytest.raises(SystemExit, match="another run"):
        evaluate(out, refuse, "--report-only", "--seed", "1")
    with pytest.raises(SystemExit, match="no answers"):
        evaluate(tmp_path / "none.md", refuse, "--report-only")


def test_paths():
    out = Path("docs/evaluation.md")
    assert paths_for(out, "test").answers == Path("docs/evaluation.test.answers.jsonl")
    assert paths_for(out, "validation").report == Path("docs/evaluation.validation.md")
    assert paths_for(out, "validation").figures == Path("docs/evaluation.validation.json")
    assert paths_for(out, "test", "a.jsonl").answers == Path("a.jsonl")


def test_unknown_configurations_are_refused(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--configs", "greedy,beam-*"])
    assert "matches no configuration" in capsys.readouterr().err
