"""The targets section's verdicts: met, missed or not measured, from hand-written answers."""

from evaluation.analysis import analyse, planned_pairs
from evaluation.scoring import mcnemar_p
from evaluation.targets import (
    MET,
    MISSED,
    NOT_MEASURED,
    best_stage,
    budget_saves,
    retrace_pays,
    targets,
    verifier,
    versus_best_of_n,
    versus_greedy,
    width_rises,
)
from tests.unit.evaluation.fakes import answer, answers

GREEDY = answers("greedy", range(50), tokens=10)  # 50 of 100 right


def test_best_stage_configuration_against_greedy():
    # +10 points exactly (10 questions only it got right), p = 2/1024: met
    results = analyse(GREEDY + answers("stage-verify-4", range(60)))
    best, basis = best_stage(results)
    assert best == "stage-verify-4" and "same numbers" in basis
    target = versus_greedy(results, best, basis)
    assert target.verdict == MET and "+10.0 points" in target.detail
    # +9 points: missed however small p is
    results = analyse(GREEDY + answers("stage-verify-4", range(59)))
    assert versus_greedy(results, *best_stage(results)).verdict == MISSED
    # +10 points but 20 against 10 discordant questions: p = 0.099, missed
    right = set(range(40)) | set(range(60, 70))
    results = analyse(answers("greedy", right) + answers("stage-verify-4", range(60)))
    target = versus_greedy(results, *best_stage(results))
    assert target.verdict == MISSED and f"p = {mcnemar_p(20, 10):.2g}" in target.detail
    # nothing to compare
    assert versus_greedy(analyse(GREEDY), None, "").verdict == NOT_MEASURED
    assert versus_greedy(analyse(answers("stage-vote-4", range(9))),
                         "stage-vote-4", "").verdict == NOT_MEASURED


def test_the_best_is_picked_on_the_validation_split_when_there_is_one():
    test = analyse(GREEDY + answers("stage-verify-4", range(80))
                   + answers("stage-vote-4", range(70)))
    assert best_stage(test)[0] == "stage-verify-4"
    tuning = analyse(answers("stage-verify-4", range(40)) + answers("stage-vote-4", range(60)))
    best, basis = best_stage(test, tuning)
    assert best == "stage-vote-4" and "validation" in basis
    # equal accuracy: fewer generated tokens wins
    tied = analyse(answers("stage-judge-4", range(5), tokens=90)
                   + answers("stage-logprob-4", range(5), tokens=40))
    assert best_stage(tied)[0] == "stage-logprob-4"


def test_stage_search_against_best_of_n():
    stage = answers("stage-vote-4", range(70), tokens=300)
    results = analyse(stage + answers("bon-vote-4", range(55), tokens=320))
    assert versus_best_of_n(results, "stage-vote-4").verdict == MET  # 15 vs 0, fewer tokens
    results = analyse(stage + answers("bon-vote-4", range(55), tokens=250))
    target = versus_best_of_n(results, "stage-vote-4")
    assert target.verdict == MISSED and "more tokens" in target.detail
    results = analyse(stage + answers("bon-vote-4", range(68), tokens=320))
    assert versus_best_of_n(results, "stage-vote-4").verdict == MISSED  # 2 vs 0: p = 0.5
    # no best-of-N with auto: against the best best-of-N at 4, and said so
    results = analyse(answers("stage-auto-4", range(70), tokens=300)
                      + answers("bon-judge-4", range(40), tokens=320)
                      + answers("bon-vote-4", range(50), tokens=320))
    target = versus_best_of_n(results, "stage-auto-4")
    assert target.verdict == MET and "bon-vote-4" in target.detail
    assert "no bon-auto-4" in target.detail
    assert versus_best_of_n(analyse(stage), "stage-vote-4").verdict == NOT_MEASURED


def test_accuracy_rising_with_the_width():
    base = answers("stage-judge-2", range(50)) + answers("stage-judge-4", range(56))
    results = analyse(base + answers("stage-judge-8", range(60)))
    assert width_rises(results, "stage-judge-4").verdict == MET  # 10 vs 0 from 2 to 8
    results = analyse(base + answers("stage-judge-8", range(55)))
    assert width_rises(results, "stage-judge-4").verdict == MISSED  # 8 below 4
    results = analyse(answers("stage-judge-2", range(50)) + answers("stage-judge-4", range(51))
                      + answers("stage-judge-8", range(52)))
    assert width_rises(results, "stage-judge-4").verdict == MISSED  # rises, but p = 0.5
    assert width_rises(analyse(base), "stage-judge-4").verdict == NOT_MEASURED


def _decisive(config: str, kept: int, of: int) -> list:
    """`of` questions with one decisive CAPTION choice each, `kept` of them right."""
    return [answer(config, i, True, trace=[
        {"tag": "CAPTION", "by": "verify", "chosen": 0 if i < kept else 1,
         "right": [True, False], "pairs": []},
        {"tag": "CONCLUSION", "by": "verify", "chosen": 0, "right": [True, True],
         "pairs": []}]) for i in range(of)]


def test_a_target_out_of_reach_says_so():
    """Greedy 85 of 100, best-of-4 with a right chain on 90: 5 points of headroom, so +10 is
    out of reach and the verdict says why; with 20 points of headroom it says nothing more."""
    def bon(top: int) -> list:
        return [answer("bon-vote-4", i, i < 85, trace=[
            {"tag": "chains", "by": "vote", "chosen": 0, "right": [i < 85, i < top],
             "pairs": []}]) for i in range(100)]

    base = answers("greedy", range(85)) + answers("stage-verify-4", range(88))
    target = versus_greedy(analyse(base + bon(90)), "stage-verify-4", "basis")
    assert target.verdict == MISSED
    assert "out of reach" in target.detail and "oracle is 90.0%, 5.0 points" in target.detail
    roomy = answers("greedy", range(70)) + answers("stage-verify-4", range(75))
    assert "out of reach" not in versus_greedy(analyse(roomy + bon(90)), "stage-verify-4",
                                               "basis").detail


def test_the_verifier_on_decisive_choices():
    target = verifier(analyse(_decisive("stage-verify-4", 6, 8) + _decisive("bon-verify-4", 2, 2)))
    assert target.verdict == MET and "8 of 10" in target.detail  # 80 %: the target itself
    assert verifier(analyse(_decisive("stage-verify-2", 7, 10))).verdict == MISSED
    # weighted_vote also asks the verifier, but the target is the verify selector's
    assert verifier(analyse(_decisive("stage-weighted_vote-4", 10, 10))).verdict == NOT_MEASURED
    assert verifier(analyse(answers("stage-verify-4", range(3), n=3))).verdict == NOT_MEASURED


def test_the_verifier_target_also_shows_reasoning_judged_by_its_result():
    """The target counts REASONING by its text; where the traces mark the REASONING candidates
    by the result they reach too, the detail adds that count beside it (the verdict is the
    text's)."""
    by_text_wrong = [answer("stage-verify-4", i, True, trace=[
        {"tag": "REASONING", "by": "verify", "chosen": 0, "right": [False, True],
         "reaches": [True, False], "pairs": []}]) for i in range(6, 10)]
    target = verifier(analyse(_decisive("stage-verify-4", 6, 6) + by_text_wrong))
    assert target.verdict == MISSED and "6 of 10" in target.detail
    assert "by the result it reaches" in target.detail and "10 of 10" in target.detail
    assert "by the result" not in verifier(analyse(_decisive("stage-verify-4", 8, 8))).detail


def test_all_six_targets_in_order():
    found = targets(analyse(GREEDY))
    assert len(found) == 6 and all(t.verdict == NOT_MEASURED for t in found)
    assert "retrace" in found[4].name and "budgeted" in found[5].name


def test_retrace_against_keep_1_at_equal_tokens():
    stage = answers("stage-verify-4", range(50), tokens=300)
    results = analyse(stage + answers("retrace-verify-4", range(65), tokens=290))
    assert retrace_pays(results).verdict == MET  # 15 vs 0, fewer tokens
    results = analyse(stage + answers("retrace-verify-4", range(65), tokens=400))
    target = retrace_pays(results)
    assert target.verdict == MISSED and "more tokens" in target.detail
    results = analyse(stage + answers("retrace-verify-4", range(52), tokens=200))
    assert retrace_pays(results).verdict == MISSED  # +2 points: p = 0.5
    assert retrace_pays(analyse(stage)).verdict == NOT_MEASURED


def test_a_budget_reaches_the_fixed_width_with_fewer_tokens():
    fixed = answers("stage-verify-4", range(50), tokens=300)
    results = analyse(fixed + answers("effort-medium-verify", range(50), tokens=200))
    target = budget_saves(results)
    assert target.verdict == MET and "33% fewer" in target.detail
    results = analyse(fixed + answers("stage-verify-4-t250", range(50), tokens=250))
    assert budget_saves(results).verdict == MISSED  # only 17 % fewer
    results = analyse(fixed + answers("effort-medium-verify", range(49), tokens=100))
    assert budget_saves(results).verdict == MISSED  # a point lower
    assert budget_saves(analyse(fixed)).verdict == NOT_MEASURED


def test_planned_pairs():
    pairs = planned_pairs(["greedy", "bon-verify-4", "bon-vote-4", "stage-verify-2",
                           "stage-verify-4", "stage-verify-8", "stage-vote-4", "stage-auto-4"])
    assert [(a, b) for a, b, _ in pairs] == [
        ("stage-verify-4", "greedy"), ("stage-vote-4", "greedy"), ("stage-auto-4", "greedy"),
        ("bon-verify-4", "greedy"), ("bon-vote-4", "greedy"),
        ("stage-verify-4", "bon-verify-4"), ("stage-vote-4", "bon-vote-4"),
        ("stage-verify-4", "stage-verify-2"), ("stage-verify-8", "stage-verify-4"),
        ("stage-verify-8", "stage-verify-2")]


def test_the_verifier_target_pools_only_the_fixed_width_runs():
    """A retracing search's picks are its winning chain's and a budget changes the candidates:
    neither counts towards the verifier's decisive-choice accuracy."""
    fixed = _decisive("stage-verify-4", 8, 10)
    assert "8 of 10" in verifier(analyse(fixed)).detail
    mixed = analyse(fixed + _decisive("retrace-verify-4", 0, 10)
                    + _decisive("effort-medium-verify", 0, 10)
                    + _decisive("stage-verify-4-t100", 0, 10))
    target = verifier(mixed)
    assert target.verdict == MET and "8 of 10" in target.detail


def test_a_budgeted_best_of_n_is_neither_a_fixed_baseline_nor_a_budget_pair():
    pairs = planned_pairs(["greedy", "bon-vote-4-t300", "stage-vote-4", "effort-medium-vote"])
    assert [(a, b) for a, b, _ in pairs] == [
        ("stage-vote-4", "greedy"), ("effort-medium-vote", "stage-vote-4"),
        ("effort-medium-vote", "greedy")]
    stage = answers("stage-vote-4", range(70), tokens=300)
    results = analyse(stage + answers("bon-vote-4-t300", range(10), tokens=320))
    assert versus_best_of_n(results, "stage-vote-4").verdict == NOT_MEASURED


def test_a_greedy_candidate_search_is_paired_with_its_all_sampled_twin():
    pairs = planned_pairs(["greedy", "stage-vote-4", "stage-vote-4-g", "bon-vote-4-g",
                           "stage-logprob-4-g"])
    assert [(a, b, why) for a, b, why in pairs if "-g" in a and b != "greedy"] == [
        ("stage-vote-4-g", "stage-vote-4", "greedy candidate against all sampled")]
    assert ("bon-vote-4-g", "greedy") in [(a, b) for a, b, _ in pairs]
