"""Part 6 of the benchmark, cold start: the requests it sends, the first / median verdict, the
order of the two sides, and the report's rows (FAKE servers stand in for real ones)."""

from __future__ import annotations

from typing import Any

import pytest

import bench.cold_start as cold
from bench.report import cold_start_rows, render
from loadtest.workload import WorkItem
from tests.unit.bench.test_report import RESULTS

ITEMS = [WorkItem(f"question {i}", f"data:image/png;base64,{i}") for i in range(3)]


def test_requests_are_beam_four_each_on_the_next_question():
    bodies = cold.request_bodies(ITEMS, "tiny-cot", 128, 5)
    assert [b["messages"][0]["content"][1]["text"] for b in bodies] == [
        "question 0", "question 1", "question 2", "question 0", "question 1"]
    assert all((b["model"], b["max_tokens"], b["beam_width"], b["selector"])
               == ("tiny-cot", 128, 4, "judge") for b in bodies)


@pytest.mark.parametrize(("first", "rest", "ratio", "met"), [
    (0.6, [0.5, 0.4, 0.6], 1.2, True),
    (0.75, [0.5, 0.5, 0.9, 0.1], 1.5, True),  # the target itself is met
    (5.9, [0.55, 0.6, 0.58], 5.9 / 0.58, False),
])
def test_verdict_is_first_over_the_median_of_the_rest(first, rest, ratio, met):
    figs = cold.verdict({"first": first, "rest": rest})
    assert figs["ratio"] == pytest.approx(ratio) and figs["met"] is met


class FakeServer:
    """A FAKE server process: a warm-up gauge and a stop that is noted."""

    def __init__(self, warm: bool) -> None:
        self.warm = warm
        self.stopped = False

    def counter(self, name: str) -> float:
        assert name == "cot_server_warmup_seconds"
        return 3.5 if self.warm else 0.0

    def stop(self) -> int:
        self.stopped = True
        return 0


def test_each_side_gets_a_fresh_server_without_the_warm_up_first(monkeypatch):
    started: list[FakeServer] = []
    sent: list[tuple[bool, Any]] = []

    def start(warm: bool) -> FakeServer:
        started.append(FakeServer(warm))
        return started[-1]

    def timed(server: FakeServer, body: dict[str, Any]) -> float:
        sent.append((server.warm, body["messages"]))
        return 2.0 if len(sent) in (1, 5) else 1.0  # each server's first request

    monkeypatch.setattr(cold, "timed", timed)
    bodies = cold.request_bodies(ITEMS, "m", 64, 4)
    runs = cold.cold_start(start, bodies)
    assert [s.warm for s in started] == [False, True] and all(s.stopped for s in started)
    assert [warm for warm, _ in sent] == [False] * 4 + [True] * 4
    assert list(runs) == ["no warm-up", "warm-up"]
    assert runs["warm-up"]["first"] == 2.0 and runs["warm-up"]["rest"] == [1.0] * 3
    assert runs["warm-up"]["warmup_s"] == 3.5 and runs["no warm-up"]["warmup_s"] == 0


def test_a_server_that_fails_a_request_is_still_stopped(monkeypatch):
    server = FakeServer(True)

    def timed(*_: Any) -> float:
        raise RuntimeError("cold-start request failed: 500")

    monkeypatch.setattr(cold, "timed", timed)
    with pytest.raises(RuntimeError):
        cold.measure(lambda: server, [{}])
    assert server.stopped


COLD = {"no warm-up": {"ready_s": 30.2, "warmup_s": 0.0, "first": 5.9,
                       "rest": [0.55, 0.6, 0.58]},
        "warm-up": {"ready_s": 36.0, "warmup_s": 5.1, "first": 0.62,
                    "rest": [0.55, 0.6, 0.58]}}


def test_cold_start_rows_give_each_side_its_ratio_and_verdict():
    rows = cold_start_rows({"ours": {"cold_start": COLD}})
    table = {r.split(" | ")[0].lstrip("| "): r.split(" | ")[1:5] for r in rows
             if r.startswith("| 6.")}
    warm = table["6. first request after ready / median, beam 4, warm-up"]
    assert warm[:3] == ["1.07", "≤ 1.5", "met"]
    assert "first 0.620 s, median 0.580 s of the 3 after it" in warm[3]
    assert "warm-up 5.1 s of it" in warm[3] and "ready 36 s after start" in warm[3]
    bare = table["6. first request after ready / median, beam 4, no warm-up"]
    assert bare[:3] == ["10.17", "≤ 1.5", "missed"] and "(no warm-up)" in bare[3]


def test_the_report_shows_cold_start_only_where_it_was_measured():
    assert cold_start_rows(RESULTS) == []
    assert "Cold start (part 6)" not in render(RESULTS, "x")
    text = render({**RESULTS, "ours": {**RESULTS["ours"], "cold_start": COLD}}, "x")
    assert "Cold start (part 6)" in text and "| 6. first request after ready" in text
