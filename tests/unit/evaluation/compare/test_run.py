"""The comparison's run loop against FAKE endpoints (an httpx mock transport answering chat
completions by rule): request bodies, seeds, retries, scoring, the judge, resuming, refusing
other settings, the outputs."""

import json
from pathlib import Path

import httpx
import pytest

from evaluation.compare import run
from evaluation.compare.predictions import PredictionLog
from evaluation.compare.run import item_seed, main

ROWS = [{"id": f"q{i}", "question": f"How many {i}?", "answer": str(i)} for i in range(5)]


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(run, "backoff", lambda attempt, retry_after=None: 0.0)


class FakeEndpoints:
    """FAKE: host a answers every question right in tagged stages, host b answers i // 2 (right
    for 0 only), host judge says yes when the candidate equals the reference.
    `failures[(host, id)]` lists statuses (0: a dropped connection) sent before the answer."""

    def __init__(self, failures=None):
        self.failures = {k: list(v) for k, v in (failures or {}).items()}
        self.bodies: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": f"model-{host}"}]})
        body = json.loads(request.content)
        self.bodies.append((host, body))
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        text = user[-1]["text"] if isinstance(user, list) else user
        if host == "judge":
            verdict = "yes" if "Reference answer: 3\nCandidate answer: 3\n" in text else "no"
            return reply(verdict)
        number = int(text.split()[-1].rstrip("?"))
        pending = self.failures.get((host, f"q{number}"))
        if pending:
            status = pending.pop(0)
            if status == 0:
                raise httpx.ConnectError("refused")
            return httpx.Response(status, json={"error": {"message": "busy"}})
        if host == "a":
            return reply(f"<SUMMARY>s</SUMMARY><CONCLUSION>{number}</CONCLUSION>")
        return reply(f"There are {number // 2}.", reasoning=f"thought {number}")


def reply(content: str, reasoning: str | None = None) -> httpx.Response:
    return httpx.Response(200, json={
        "choices": [{"finish_reason": "stop", "message": {
            "content": content, "reasoning_content": reasoning}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4}})


def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def compare(tmp_path: Path, fake, *extra: str):
    return main(["--dataset", str(dataset(tmp_path)), "--a", "http://a", "--b", "http://b/",
                 "--b-name", "base", "--b-fields", '{"temperature": 0}', "--out",
                 str(tmp_path / "out"), "--no-progress", "--retries", "2", *extra],
                httpx.MockTransport(fake))


def test_two_systems_scored_retried_and_resumed(tmp_path: Path):
    fake = FakeEndpoints(failures={("a", "q1"): [503, 0], ("b", "q2"): [500],
                                   ("b", "q3"): [429, 429, 429]})
    result = compare(tmp_path, fake)
    a, base = result.summaries
    assert (a.system, a.right, a.errors) == ("A", 5, 0)  # the tagged CONCLUSION is scored
    assert (base.system, base.right, base.errors) == ("base", 1, 2)
    assert result.paired and (result.paired.only_a, result.paired.only_b) == (4, 0)
    # the model from /v1/models, the fields merged, one seed per question for both systems
    a_bodies = [b for host, b in fake.bodies if host == "a"]
    b_bodies = [b for host, b in fake.bodies if host == "b"]
    assert {b["model"] for b in a_bodies} == {"model-a"}
    assert all(b["temperature"] == 0 for b in b_bodies)
    assert all("temperature" not in b for b in a_bodies)
    seeds = {b["seed"] for b in a_bodies}
    assert seeds == {b["seed"] for b in b_bodies} == {item_seed(0, r["id"]) for r in ROWS}
    assert len(a_bodies) == 5 + 2 and len(b_bodies) == 5 + 2  # the retries (not after a 500)
    log = PredictionLog(tmp_path / "out" / "predictions.jsonl")
    first = {(p.system, p.id): p for p in log.read()}
    assert first["A", "q1"].attempts == 3 and first["A", "q1"].scored == "1"
    assert first["A", "q1"].reasoning == "<SUMMARY>s</SUMMARY>"
    assert (first["base", "q2"].status, first["base", "q2"].attempts) == (500, 1)
    assert (first["base", "q3"].status, first["base", "q3"].attempts) == (429, 3)
    assert first["base", "q4"].reasoning == "thought 4" and first["base", "q4"].read == "2"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["right"] for s in summary["summaries"]] == [5, 1]
    assert (tmp_path / "out" / "report.html").read_text().count("data-outcome=") == 5
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| A | 5/5 | 100.0% |" in report and "| base | 1/5 | 20.0% |" in report
    assert "--b-fields" in report and "--b-name base" in report

    fake.bodies.clear()
    again = compare(tmp_path, fake)  # only the two failures are asked again
    assert sorted((h, b["messages"][-1]["content"][-1]["text"]) for h, b in fake.bodies) == [
        ("b", "How many 2?"), ("b", "How many 3?")]
    assert again.summaries[1].right == 1 and again.summaries[1].errors == 0
    fake.bodies.clear()
    compare(tmp_path, fake)
    assert fake.bodies == []


def test_other_settings_under_the_same_name_are_refused(tmp_path: Path):
    compare(tmp_path, FakeEndpoints())
    moved = FakeEndpoints()  # the same server on another port answers the same: nothing asked
    main(["--dataset", str(dataset(tmp_path)), "--a", "http://a:8080", "--b", "http://b:9",
          "--b-name", "base", "--b-fields", '{"temperature": 0}', "--out",
          str(tmp_path / "out"), "--no-progress"], httpx.MockTransport(moved))
    assert [path for path, _ in moved.bodies] == []
    with pytest.raises(SystemExit, match="other settings"):
        compare(tmp_path, FakeEndpoints(), "--a-fields", '{"beam_width": 4}')


def test_the_judge_scores(tmp_path: Path):
    fake = FakeEndpoints()
    result = main(["--dataset", str(dataset(tmp_path)), "--a", "http://a", "--a-model", "m",
                   "--scorer", "judge", "--judge-url", "http://judge", "--judge-model", "j",
                   "--judge-fields", '{"max_tokens": 1}', "--out", str(tmp_path / "o"),
                   "--no-progress", "--no-seed"], httpx.MockTransport(fake))
    assert result.summaries[0].right == 1  # the fake judge accepts only question 3
    judged = [b for host, b in fake.bodies if host == "judge"]
    assert len(judged) == 5 and {b["model"] for b in judged} == {"j"}
    assert all(b["max_tokens"] == 1 for b in judged)
    assert all("seed" not in b for host, b in fake.bodies if host == "a")


def test_report_only_and_limit(tmp_path: Path):
    compare(tmp_path, FakeEndpoints(), "--limit", "2")
    result = main(["--dataset", str(dataset(tmp_path)), "--limit", "2", "--report-only",
                   "--out", str(tmp_path / "out"), "--no-progress"])
    assert [s.system for s in result.summaries] == ["A", "base"]
    assert [s.questions for s in result.summaries] == [2, 2]


@pytest.mark.parametrize("argv", [
    [], ["--a", "http://a"], ["--dataset", "d.jsonl", "--a", "http://a", "--b", "http://b",
                              "--b-name", "A"],
    ["--dataset", "d.jsonl", "--a", "http://a", "--scorer", "judge"],
    ["--dataset", "d.jsonl", "--a", "http://a", "--a-fields", "[1]"],
    ["--dataset", "d.jsonl", "--a", "http://a", "--concurrency", "0"],
    ["--dataset", "d.jsonl"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_bad_dataset_is_a_clear_error(tmp_path: Path):
    (tmp_path / "d.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(SystemExit, match=r"d\.jsonl:1: no answer"):
        main(["--dataset", str(tmp_path / "d.jsonl"), "--a", "http://a"])


def test_system_message_and_prefill(tmp_path: Path):
    fake = FakeEndpoints()
    main(["--dataset", str(dataset(tmp_path)), "--a", "http://a", "--a-model", "m",
          "--a-system", "Be brief.", "--a-prefill", "<CONCLUSION>", "--limit", "1",
          "--out", str(tmp_path / "o"), "--no-progress"], httpx.MockTransport(fake))
    [(_, body)] = fake.bodies
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant"]
    assert body["messages"][0]["content"] == "Be brief."
    assert body["messages"][-1]["content"] == "<CONCLUSION>"
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    [p] = PredictionLog(tmp_path / "o" / "predictions.jsonl").read()
    assert p.settings["prefill"] == "<CONCLUSION>" and p.settings["system_prompt"] == "Be brief."
