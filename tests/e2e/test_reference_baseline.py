"""The reference baseline on the tiny model: one question, beam width 2, tiny token caps."""

from pathlib import Path

from bench.reference import run_baseline
from bench.reference_prompts import STAGES
from loadtest.workload import procedural_items

BEAM_WIDTH = 2


def test_baseline_answers_all_stages_with_the_reference_call_count(tiny_model_dir: Path) -> None:
    questions = procedural_items(1, seed=7, sizes=(64,))
    result = run_baseline(str(tiny_model_dir), questions, beam_width=BEAM_WIDTH,
                          stage_max_tokens=3, judge_max_tokens=3, seed=0)
    [answer] = result["answers"]
    assert list(answer["stages"]) == list(STAGES)

    comparisons = answer["comparisons"]
    assert [c["stage"] for c in comparisons] == list(STAGES)  # beam_width − 1 per stage
    for comparison in comparisons:
        assert comparison["winner"] in (comparison["first"], comparison["second"])
        if comparison["stage"] != "REASONING":
            assert (comparison["calls"], comparison["decided_by"]) == (1, "judge")
    [reasoning] = [c for c in comparisons if c["stage"] == "REASONING"]
    # checks one by one; a flagged candidate ends the comparison, else the pairwise judge runs
    assert reasoning["calls"] in ((1, 2) if reasoning["decided_by"] == "check" else (3,))

    calls = result["calls_by_kind"]
    assert calls["candidate"] == len(STAGES) * BEAM_WIDTH
    assert calls["candidate"] + calls["judge"] + calls["reasoning_check"] == sum(
        c["calls"] for c in comparisons) + len(STAGES) * BEAM_WIDTH == result["generate_calls"]
    assert 0 < result["new_tokens"] <= result["generate_calls"] * 3
    assert result["questions"] == 1 and result["questions_per_s"] > 0
