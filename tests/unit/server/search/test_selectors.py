"""Tournament and selector logic, with a deterministic FAKE judge (pure logic, no engine)."""

import math
import random

import pytest

from server.search.selectors import (
    best_by_logprob,
    candidates_agree,
    consensus,
    knockout,
    majority,
    normalise,
    option_probability,
)
from server.search.trace import Candidate


def fake_judge_prefers_highest(calls: list[list[tuple[int, int]]]):
    """FAKE judge: the higher index always wins; records each round's pairs."""
    async def judge_round(pairs):
        calls.append(list(pairs))
        return [(max(a, b), None) for a, b in pairs]
    return judge_round


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 16])
async def test_knockout_makes_n_minus_1_comparisons_in_log2_rounds(n):
    rounds: list[list[tuple[int, int]]] = []
    result = await knockout(range(n), fake_judge_prefers_highest(rounds))
    assert len(result.comparisons) == n - 1
    assert len(rounds) == math.ceil(math.log2(n)) if n > 1 else len(rounds) == 0
    assert max((c.round for c in result.comparisons), default=0) == len(rounds)
    assert result.winner == n - 1


async def test_odd_entrant_gets_a_bye_and_can_still_win():
    rounds: list[list[tuple[int, int]]] = []
    result = await knockout([0, 1, 2], fake_judge_prefers_highest(rounds))
    assert rounds[0] == [(0, 1)]  # 2 sits out round 1
    assert rounds[1] == [(1, 2)]
    assert result.winner == 2


async def test_winner_propagates_between_rounds():
    async def judge_round(pairs):  # FAKE judge: candidate 2 beats everyone, else lower wins
        return [((2 if 2 in (a, b) else min(a, b)), 0.9) for a, b in pairs]
    result = await knockout(range(6), judge_round)
    assert result.winner == 2
    winners_by_round = {c.round: c.winner for c in result.comparisons if 2 in (c.first, c.second)}
    assert set(winners_by_round.values()) == {2}
    assert len(winners_by_round) == 3


async def test_shuffled_order_keeps_pairs_and_counts():
    rounds: list[list[tuple[int, int]]] = []
    result = await knockout(range(8), fake_judge_prefers_highest(rounds), random.Random(3))
    firsts = [c.first for c in result.comparisons]
    assert len(result.comparisons) == 7
    assert any(c.first > c.second for c in result.comparisons), firsts  # some were swapped
    assert result.winner == 7


async def test_a_judge_returning_a_stranger_is_an_error():
    async def judge_round(pairs):
        return [(99, None) for _ in pairs]
    with pytest.raises(ValueError):
        await knockout(range(2), judge_round)


def test_best_by_logprob_skips_empty_candidates():
    cands = [Candidate("", 0, 0.0, False), Candidate("a", 3, -2.0, True),
             Candidate("b", 3, -0.5, True)]
    assert best_by_logprob(cands) == 2


def test_candidates_agree_ignores_case_and_spacing():
    same = [Candidate("Three  red", 2, -1, True), Candidate("three red", 2, -1, True)]
    assert candidates_agree(same)
    assert not candidates_agree([*same, Candidate("four", 1, -1, True)])


def test_normalise_makes_equal_answers_equal():
    assert normalise("Three.") == normalise(" 3 ") == normalise("three") == "3"
    assert normalise("The RED circle, yes!") == "the red circle yes"
    assert normalise("2.5") == "2.5" and normalise("2.") == "2"


def test_majority_counts_normalised_answers_and_breaks_ties_by_the_best_member():
    texts = ["3", "Three.", "4", "four", "2"]
    logprob = [-1.0, -2.0, -0.5, -3.0, -0.1]
    members, share = majority(texts, range(5), lambda i: logprob[i])
    assert members == [2, 3] and share == pytest.approx(2 / 5)  # 2 vs 2: "4" has the best member
    members, share = majority(texts, range(4), lambda i: 0.0, weights=[0.9, 0.9, 0.1, 0.1, 0])
    assert members == [0, 1] and share == pytest.approx(1.8 / 2.0)
    members, share = majority(["a", "b"], [1], lambda i: 0.0)
    assert members == [1] and share == 1.0


def test_consensus_picks_the_text_closest_to_the_others():
    texts = ["red circle top left, blue square", "red circle top left, blue square",
             "green triangle bottom", "red circle top left, blue circle"]
    assert consensus(texts, range(4)) == [0, 1]
    assert consensus(texts, [2, 3]) == [2, 3]  # two texts: a tie


def test_option_probability_renormalises_over_the_options():
    assert option_probability(0, [math.log(0.3), math.log(0.1)], 0) == pytest.approx(0.75)
    assert option_probability(1, [None, -1.0], 1) == 1.0  # a missing logprob: the pick alone
    assert option_probability(1, [None, -1.0], 0) == 0.0
