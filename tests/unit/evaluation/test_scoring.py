"""The evaluation's trace bookkeeping on hand-written traces (pure logic): which candidates are
right, which choices are decisive, what the selector kept, the judge's tally, the oracle."""

import pytest

from evaluation.scoring import (
    CHAINS,
    candidate_right,
    is_decisive,
    mcnemar_p,
    paired,
    score,
    trace_facts,
)
from tests.unit.evaluation.fakes import answer

REFERENCE = {"SUMMARY": "S", "CAPTION": "Top left: red circle.", "REASONING": "R",
             "CONCLUSION": "2"}


def _stage(tag, texts, chosen, by="judge", comparisons=()):
    return {"name": tag.lower(), "tag": tag, "text": texts[chosen], "chosen_index": chosen,
            "selected_by": by, "fallback": False,
            "candidates": [{"text": t, "tokens": 3, "mean_logprob": -0.1, "closed": True,
                            "score": None} for t in texts],
            "comparisons": [{"round": 1, "first": f, "second": s, "winner": w,
                             "confidence": 0.6} for f, s, w in comparisons]}


def test_a_candidate_is_right_by_its_text_or_for_the_conclusion_its_answer():
    assert candidate_right("CAPTION", "  Top left:\n red  circle. ", REFERENCE)  # spacing aside
    assert not candidate_right("CAPTION", "Top left: red circle", REFERENCE)
    assert candidate_right("CONCLUSION", "Two.", REFERENCE)
    assert not candidate_right("CONCLUSION", "3", REFERENCE)
    assert not candidate_right("OTHER", "S", REFERENCE)


def test_a_choice_is_decisive_when_some_but_not_all_usable_candidates_are_right():
    assert is_decisive([True, False])
    assert is_decisive([None, True, False, False])
    assert not is_decisive([True, True, None])
    assert not is_decisive([False, False])
    assert not is_decisive([True, None])  # one usable candidate: no choice
    assert not is_decisive([])


def test_stage_trace_facts_mark_every_candidate():
    stages = [_stage("SUMMARY", ["S", "", "x"], 0, comparisons=[(0, 2, 0)]),
              {**_stage("CONCLUSION", ["2"], 0, by="only"), "fallback": True}]
    facts = trace_facts(stages, REFERENCE, best_of_n=False)
    assert facts == [
        {"tag": "SUMMARY", "by": "judge", "chosen": 0, "right": [True, None, False],
         "pairs": [[0, 2, 0]], "logprobs": [-0.1, -0.1, -0.1]},
        {"tag": "CONCLUSION", "by": "only", "chosen": 0, "right": [True], "pairs": [],
         "logprobs": [-0.1], "fallback": True}]
    assert trace_facts(None, REFERENCE, best_of_n=False) is None
    assert trace_facts([], REFERENCE, best_of_n=True) is None


def test_trace_facts_keep_each_candidates_verifier_score_where_one_was_asked():
    stage = _stage("REASONING", ["a", "b"], 1, by="verify")
    stage["candidates"][0]["score"], stage["candidates"][1]["score"] = 0.123456, 0.9
    (fact,) = trace_facts([stage], REFERENCE, best_of_n=False)
    assert fact["scores"] == [0.1235, 0.9] and fact["logprobs"] == [-0.1, -0.1]


def test_stage_search_is_scored_on_decisive_choices_per_stage():
    stages = [
        _stage("SUMMARY", ["S", "S"], 0, comparisons=[(0, 1, 0)]),  # both right: not decisive
        _stage("CAPTION", ["Top left: red circle.", "Top left: blue circle.",
                           "Top left: none.", "Top left: red circle."], 1,
               comparisons=[(0, 1, 1), (2, 3, 3), (1, 3, 1)]),  # kept a wrong one
        _stage("REASONING", ["R", "x"], 0, by="verify"),  # decisive, kept the right one
        _stage("CONCLUSION", ["two", "3"], 1, comparisons=[(0, 1, 1)]),  # decisive, wrong
    ]
    facts = trace_facts(stages, REFERENCE, best_of_n=False)
    report = score("stage-judge-4", [answer("stage-judge-4", 0, False, trace=facts)])
    assert report.questions == 1 and report.oracle == 1  # "two" was among the answers
    assert "SUMMARY" not in report.decisive
    assert (report.decisive["CAPTION"].n, report.decisive["CAPTION"].right) == (1, 0)
    assert (report.decisive["REASONING"].n, report.decisive["REASONING"].right) == (1, 1)
    assert (report.decisive["CONCLUSION"].n, report.decisive["CONCLUSION"].right) == (1, 0)
    assert (report.all_decisive.n, report.all_decisive.right) == (3, 1)
    assert (report.by_method["judge"].n, report.by_method["verify"].right) == (2, 1)
    # the judge's pairs: CAPTION (0 right vs 1 wrong, chose 1: wrong), (2 wrong vs 3 right,
    # chose 3: right), (1 wrong vs 3 right, chose 1: wrong); CONCLUSION (chose the wrong one)
    assert (report.pairs["CAPTION"].n, report.pairs["CAPTION"].right) == (3, 1)
    assert (report.pairs["CONCLUSION"].n, report.pairs["CONCLUSION"].right) == (1, 0)
    assert "SUMMARY" not in report.pairs
    assert report.methods["REASONING"] == {"verify": 1}


def test_best_of_n_is_one_choice_among_whole_chains():
    stages = [_stage("SUMMARY", ["S", "x", "S"], 1, by="vote"),
              _stage("CONCLUSION", ["5", "2", ""], 0, by="vote", comparisons=[(0, 1, 0)])]
    facts = trace_facts(stages, REFERENCE, best_of_n=True)
    assert facts == [{"tag": CHAINS, "by": "vote", "chosen": 0, "right": [False, True, None],
                      "pairs": [[0, 1, 0]], "logprobs": [-0.1, -0.1, -0.1]}]
    report = score("bon-vote-4", [
        answer("bon-vote-4", 0, False, trace=facts),
        answer("bon-vote-4", 1, False, status=503),  # a failed request: no oracle, no choice
        answer("bon-vote-4", 2, True, trace=[{"tag": CHAINS, "by": "vote", "chosen": 1,
                                              "right": [False, True], "pairs": []}]),
        answer("bon-vote-4", 3, True, trace=[{"tag": CHAINS, "by": "vote", "chosen": 0,
                                              "right": [True, True], "pairs": []}]),
    ])
    assert report.questions == 4 and report.oracle == 3 and report.oracle_share == 0.75
    assert set(report.decisive) == {CHAINS}
    assert (report.decisive[CHAINS].n, report.decisive[CHAINS].right) == (2, 1)
    assert (report.pairs[CHAINS].n, report.pairs[CHAINS].right) == (1, 0)


def test_a_chain_that_ended_before_its_answer_is_wrong():
    stages = [_stage("SUMMARY", ["S", "S"], 0, by="judge")]
    facts = trace_facts(stages, REFERENCE, best_of_n=True)
    assert facts is not None and facts[0]["right"] == [False, False]


def test_mcnemar_is_exact_and_symmetric():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_p(3, 7) == mcnemar_p(7, 3) == pytest.approx(2 * 176 / 1024)
    assert mcnemar_p(5, 5) == 1.0


def test_pairs_are_counted_on_the_questions_both_answered():
    a = [answer("a", i, ok) for i, ok in enumerate([True, True, False, True])]
    b = [answer("b", i, ok) for i, ok in enumerate([False, True, True])]
    pair = paired("a", a, "b", b)
    assert (pair.n, pair.a_only, pair.b_only) == (3, 1, 1)
    assert pair.accuracy_a == pair.accuracy_b == pytest.approx(2 / 3)
    assert pair.points == 0.0 and pair.p == 1.0
    failed = paired("a", a, "b", [answer("b", 0, True, status=500)])
    assert (failed.n, failed.a_only, failed.b_only) == (1, 1, 0)  # an error counts as wrong


def test_reasoning_choices_are_also_scored_by_the_result_each_candidate_reaches():
    reference = {**REFERENCE, "REASONING": "Red: circle, square = 2. So there are 2 red shapes."}
    miscounted = "Red: circle, circle = 2. So there are 2 red shapes."  # wrong steps, right result
    wrong = "Red: circle = 1. So there is 1 red shape."
    stages = [_stage("REASONING", [miscounted, wrong, ""], 0, by="verify"),
              _stage("CAPTION", ["Top left: red circle.", "Top left: none."], 1, by="verify")]
    facts = trace_facts(stages, reference, best_of_n=False)
    assert facts is not None
    assert facts[0]["right"] == [False, False, None] and facts[0]["reaches"] == [True, False, None]
    assert "reaches" not in facts[1]
    report = score("stage-verify-4", [answer("stage-verify-4", 0, True, trace=facts)])
    assert "REASONING" not in report.decisive  # by its text, neither candidate is right
    assert (report.by_result.n, report.by_result.right) == (1, 1)
    assert (report.all_decisive.n, report.all_decisive.right) == (1, 0)  # the CAPTION
    by_result = report.all_decisive_by_result
    assert (by_result.n, by_result.right) == (2, 1)
