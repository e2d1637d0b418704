"""The comparison's figures (pure)."""

from evaluation.compare.datasets import Item
from evaluation.compare.predictions import Prediction
from evaluation.compare.summary import compare
from evaluation.scoring import mcnemar_p

ITEMS = [Item(str(i), "q", "1") for i in range(6)]


def p(system: str, i: int, right: bool | None, status: int = 200, tokens: int = 10):
    return Prediction(system, str(i), i, "q", None, "1", "numeric", status, correct=right,
                      completion_tokens=tokens, latency_s=1.0 + i)


def test_two_systems_paired():
    # A right on 0,1,2,3; B right on 0,4; B failed on 5; A undecided on 5
    records = [p("A", i, i < 4) for i in range(5)] + [p("A", 5, None)]
    records += [p("B", i, i in (0, 4), tokens=20) for i in range(5)] + [p("B", 5, None, 503)]
    result = compare(ITEMS, ["A", "B"], records)
    a, b = result.summaries
    assert (a.right, a.answered, a.undecided, a.errors) == (4, 6, 1, 0)
    assert (b.right, b.answered, b.errors) == (2, 5, 1)
    assert a.accuracy == 4 / 6 and a.ci_low < a.accuracy < a.ci_high
    assert b.completion_tokens == 20.0 and a.latency_p50_s == 3.5
    paired = result.paired
    assert (paired.both, paired.only_a, paired.only_b, paired.neither) == (1, 3, 1, 1)
    assert paired.points == 100 * 2 / 6 and paired.p == mcnemar_p(3, 1)
    assert [result.outcome(i) for i in ITEMS] == [
        "both", "only-a", "only-a", "only-a", "only-b", "neither"]


def test_one_system_and_unasked_questions():
    result = compare(ITEMS, ["A"], [p("A", 0, True), p("X", 1, True)])
    (a,) = result.summaries
    assert (a.right, a.answered, a.errors, a.accuracy) == (1, 1, 5, 1 / 6)
    assert result.paired is None and result.outcome(ITEMS[0]) is None
