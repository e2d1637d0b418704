"""Compute budgets: the spending rule (pure) and the searches under a budget over a
deterministic FAKE engine (pure orchestration logic)."""

import pytest

from server.search.beam import StageSearch
from server.search.budget import SearchBudget, Spending
from server.search.interface import Sampling
from server.search.params import SearchParams, SearchShape, Selector
from server.search.prompts import Conversation
from server.search.schema import LLAVA_COT
from tests.unit.server.search.fake_engine import FakeEngine, render_chat_fake

CONV = Conversation(({"role": "user", "content": [{"type": "text", "text": "How many?"}]},), ())
TAGS = ("A", "B", "C")


def spending(**budget) -> Spending:
    return Spending(SearchBudget(**budget), {t: 100 for t in TAGS}, TAGS)


def test_a_budget_needs_tokens_or_answers():
    with pytest.raises(ValueError):
        SearchBudget()


def test_estimates_come_from_the_stage_then_the_request_then_the_cap():
    s = spending(tokens=1000)
    assert s.estimate("B") == 100  # nothing seen: the cap
    s.saw("A", [10, 30])
    assert s.estimate("A") == 20 and s.estimate("B") == 20  # the request's mean so far
    s.saw("B", [50])
    assert s.estimate("B") == 50 and s.estimate("C") == 30  # C: the mean of all three seen
    assert s.answer_estimate() == 20 + 50 + 30


def test_affords_keeps_one_candidate_of_each_later_stage_in_reserve():
    s = spending(tokens=100)
    s.saw("A", [10])
    # 2 more of A (20) + 2 verdicts + B and C in reserve (10 each) = 42
    assert s.affords(58, "A", 2, 2) and not s.affords(59, "A", 2, 2)
    assert s.affords(80, "C", 2, 0)  # nothing after C
    assert not s.affords(81, "C", 2, 0)


def test_a_budget_in_answers_scales_with_the_answers_length():
    s = spending(answers=2.0)
    s.saw("A", [10])
    assert s.limit() == 60  # 2 x (10 + 10 + 10)
    s.saw("B", [40])
    assert s.limit() == 2 * (10 + 40 + 25)
    both = Spending(SearchBudget(tokens=50, answers=2.0), {t: 100 for t in TAGS}, TAGS)
    both.saw("A", [10])
    assert both.limit() == 50  # the lower binds


def stage_params(**kw) -> SearchParams:
    kw.setdefault("sampling", Sampling(temperature=0.6, seed=1))
    return SearchParams(schema=LLAVA_COT, selector=Selector.VERIFY, **kw)


async def run(engine, p):
    events = [e async for e in StageSearch(engine, render_chat_fake).run(CONV, p)]
    return events[-1]


async def test_where_candidates_agree_a_budgeted_stage_stops_at_two():
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} same")
    trace = await run(engine, stage_params(beam_width=8, budget=SearchBudget(tokens=10_000)))
    assert [s.n for _, s in engine.generate_calls] == [2, 2, 2, 2]
    assert all(len(s.candidates) == 2 for s in trace.stages)


async def test_where_candidates_disagree_it_widens_to_the_width_the_budget_affords():
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} seed {s.seed} {i}")
    trace = await run(engine, stage_params(beam_width=6, budget=SearchBudget(tokens=10_000)))
    assert [s.n for _, s in engine.generate_calls] == [2, 2, 2] * 4
    assert all(len(s.candidates) == 6 for s in trace.stages)
    # each batch its own seed: no candidate sampled twice
    assert all(len({c.text for c in s.candidates}) == 6 for s in trace.stages)


async def test_a_tight_budget_is_kept_and_still_answers():
    script = lambda tag, s, i: f"{tag} seed {s.seed} {i}"  # noqa: E731
    engine = FakeEngine(script=script)
    full = await run(engine, stage_params(beam_width=4))
    budget = full.usage.completion_tokens // 2
    engine = FakeEngine(script=script)
    trace = await run(engine, stage_params(beam_width=4, budget=SearchBudget(tokens=budget)))
    assert trace.usage.completion_tokens <= budget
    assert [s.tag for s in trace.stages] == list(LLAVA_COT.tags) and trace.answer
    assert min(len(s.candidates) for s in trace.stages) < 4


async def test_a_budget_below_one_answer_gives_one_candidate_a_stage():
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} seed {s.seed} {i}")
    trace = await run(engine, stage_params(beam_width=4, budget=SearchBudget(tokens=1)))
    assert all(len(s.candidates) == 1 and s.selection.method == "only" for s in trace.stages)
    assert not engine.choose_calls and trace.answer


async def test_best_of_n_adds_chains_only_while_their_answers_differ():
    agree = FakeEngine(script=lambda tag, s, i: f"{tag} same")
    trace = await run(agree, stage_params(beam_width=8, shape=SearchShape.BEST_OF_N,
                                          budget=SearchBudget(answers=100)))
    assert len(agree.generate_calls) == 2 and len(trace.stages[-1].candidates) == 2
    differ = FakeEngine(script=lambda tag, s, i: f"{tag} seed {s.seed}")
    trace = await run(differ, stage_params(beam_width=8, shape=SearchShape.BEST_OF_N,
                                           budget=SearchBudget(answers=100)))
    assert len(differ.generate_calls) == 8 and len(trace.stages[-1].candidates) == 8
    tight = FakeEngine(script=lambda tag, s, i: f"{tag} seed {s.seed}")
    trace = await run(tight, stage_params(beam_width=8, shape=SearchShape.BEST_OF_N,
                                          budget=SearchBudget(answers=3)))
    assert 2 <= len(tight.generate_calls) < 8
