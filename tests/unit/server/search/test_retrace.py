"""The retracing search (SWIRES) over a deterministic FAKE engine (pure orchestration logic).
The FAKE verifier says yes with probability 0.9 to a candidate whose text has "right" in it,
0.2 to any other."""

import pytest

from server.search.beam import StageChosen, StageSearch
from server.search.budget import SearchBudget
from server.search.interface import PromptTooLong, Sampling, prompt_text
from server.search.params import SearchParams, SearchShape, Selector
from server.search.schema import LLAVA_COT
from tests.unit.server.search.fake_engine import (
    CONV,
    FakeEngine,
    cancel_while_generating,
    render_chat_fake,
)


def params(**kw) -> SearchParams:
    kw.setdefault("sampling", Sampling(temperature=0.6, seed=3))
    kw.setdefault("beam_width", 4)
    return SearchParams(schema=LLAVA_COT, shape=SearchShape.RETRACE, selector=Selector.VERIFY,
                        **kw)


async def run(engine, p):
    events = [e async for e in StageSearch(engine, render_chat_fake).run(CONV, p)]
    return events[:-1], events[-1]


async def test_without_low_scores_it_keeps_two_and_branches_each_kept_chain():
    """Candidate 1 of every call is right (0.9 > 0.5): no retrace; the first stage branches 4
    from the question, every later stage 2 from each of the 2 kept chains; the answer is the
    best chain's."""
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right {i}" if i == 1 else f"{tag} {i}")
    events, trace = await run(engine, params())
    assert not trace.retraces
    assert [s.n for _, s in engine.generate_calls] == [4, 2, 2, 2, 2, 2, 2]
    assert [e.result.tag for e in events] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    for position, stage in enumerate(trace.stages):
        assert len(stage.candidates) == 4
        assert "right" in stage.text and stage.selection.method == "verify"
        assert set(stage.attempts) == {0}
        if position:  # each candidate continues one of the previous stage's two kept ones
            assert len(set(stage.parents)) == 2
            previous = trace.stages[position - 1]
            assert stage.parents[stage.chosen_index] == previous.chosen_index
    assert trace.answer.startswith("CONCLUSION right")
    # each verification continues its own candidate's transcript, and is asked once
    assert len(engine.choose_calls) == len(set(engine.choose_calls)) == 16


async def test_a_stage_scored_low_sends_the_search_back_one_stage_at_most_max_retraces_times():
    """REASONING is never right: each time, CAPTION is sampled again and REASONING after it,
    until the retraces run out; the candidates of every pass stay in the trace."""
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right" if tag != "REASONING"
                        else f"{tag} seed {s.seed} {i}")
    _, trace = await run(engine, params(max_retraces=2))
    assert [(r.stage, r.back_to) for r in trace.retraces] == [("REASONING", "CAPTION")] * 2
    assert all(r.best == pytest.approx(0.2) for r in trace.retraces)
    caption, reasoning = trace.stages[1], trace.stages[2]
    assert sorted(set(caption.attempts)) == sorted(set(reasoning.attempts)) == [0, 1, 2]
    assert len(reasoning.candidates) == 12  # 4 a pass, kept from every pass
    assert all(p is not None and p < len(caption.candidates) for p in reasoning.parents)
    assert reasoning.parents[reasoning.chosen_index] == caption.chosen_index
    assert trace.answer == "CONCLUSION right"


async def test_the_retrace_stops_once_a_pass_scores_high():
    calls = {"REASONING": 0}

    def script(tag, s, i):
        if tag != "REASONING":
            return f"{tag} right {i}"
        calls[tag] += 1  # one script call per candidate
        return f"{tag} right {i}" if calls[tag] > 4 else f"{tag} wrong {calls[tag]}"
    engine = FakeEngine(script=script)
    _, trace = await run(engine, params(max_retraces=3))
    assert len(trace.retraces) == 1
    reasoning = trace.stages[2]
    assert "right" in reasoning.text and reasoning.attempts[reasoning.chosen_index] == 1


async def test_no_retrace_where_every_candidate_says_the_same():
    """The same text everywhere: nothing to verify (no score), nothing to go back for."""
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} same")
    _, trace = await run(engine, params())
    assert not trace.retraces and not engine.choose_calls
    assert all(s.selection.method == "agree" for s in trace.stages)
    # the same text after the same chain is one chain: one kept, so one call a stage after
    assert [s.n for _, s in engine.generate_calls] == [4, 4, 4, 4]


async def test_a_budget_too_small_for_a_retrace_takes_none():
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} seed {s.seed} {i}")
    _, unbudgeted = await run(engine, params(max_retraces=3))
    assert len(unbudgeted.retraces) == 3
    spent = unbudgeted.usage.completion_tokens
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} seed {s.seed} {i}")
    _, trace = await run(engine, params(max_retraces=3, budget=SearchBudget(tokens=spent // 2)))
    assert len(trace.retraces) < 3
    assert trace.usage.completion_tokens < spent


async def test_cancelling_a_retrace_cancels_its_engine_calls():
    engine = FakeEngine(delay=10)
    events = StageSearch(engine, render_chat_fake).run(CONV, params(beam_width=2, keep=1))
    await cancel_while_generating(engine, events)


async def test_stages_come_once_the_answer_is_chosen_with_the_usage_so_far():
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right" if i == 0 else f"{tag} {i}")
    events, trace = await run(engine, params())
    assert all(isinstance(e, StageChosen) for e in events)
    assert events[-1].usage == trace.usage


async def test_the_width_is_shared_among_the_kept_chains():
    """Width 5, keep 2: the first kept chain branches 3, the second 2; keep 3 at width 2:
    one each, at least."""
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right {i}" if i == 1 else f"{tag} {i}")
    await run(engine, params(beam_width=5))
    assert [s.n for _, s in engine.generate_calls][:3] == [5, 3, 2]
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right {i}" if i == 1 else f"{tag} {i}")
    await run(engine, params(beam_width=2, keep=3))
    assert [s.n for _, s in engine.generate_calls][:3] == [2, 1, 1]


async def test_each_pass_samples_anew_and_no_verification_is_asked_twice():
    """The seed names the pass: a chain branched again after a retrace gets new candidates;
    every verification prompt is asked once over all the passes."""
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right" if tag != "REASONING"
                        else f"{tag} seed {s.seed} {i}")
    _, trace = await run(engine, params(max_retraces=2))
    reasoning = trace.stages[2]
    by_parent: dict = {}
    for c, parent in zip(reasoning.candidates, reasoning.parents, strict=True):
        by_parent.setdefault(parent, []).append(c.text)
    assert all(len(texts) == len(set(texts)) for texts in by_parent.values())
    assert len(engine.choose_calls) == len(set(engine.choose_calls))


async def test_no_room_after_a_retrace_keeps_the_answers_it_already_had():
    """The answers score low: the search goes back to REASONING, whose new pass writes a long
    candidate that scores best but leaves max_tokens no room for an answer. The answer stage
    goes on with its first pass's candidates (after the short REASONING), not lost."""
    calls = {"REASONING": 0}

    def script(tag, s, i):
        if tag == "REASONING":
            calls[tag] += i == 0
            if calls[tag] == 1:
                return "REASONING plain" if i == 0 else "REASONING right"
            return "REASONING right" + " long" * 12 if i == 0 else "REASONING plain"
        return f"CONCLUSION 3 x{i}" if tag == "CONCLUSION" else f"{tag} right"
    engine = FakeEngine(script=script)
    _, trace = await run(engine, params(beam_width=2, keep=1, max_tokens=20, max_retraces=1))
    assert [(r.stage, r.back_to) for r in trace.retraces] == [("CONCLUSION", "REASONING")]
    assert [s.tag for s in trace.stages] == list(LLAVA_COT.tags)
    assert trace.answer.startswith("CONCLUSION 3")
    reasoning = trace.stages[2]
    assert reasoning.text == "REASONING right"  # the chain the answer continues
    assert trace.stages[3].parents[trace.stages[3].chosen_index] == reasoning.chosen_index


async def test_a_prompt_too_long_after_the_first_stage_ends_the_answer_not_the_request():
    class Short(FakeEngine):
        async def generate(self, prompt, images, sampling, on_partial=None):
            if "<CONCLUSION>" in prompt_text(prompt):
                raise PromptTooLong("the context is full")
            return await super().generate(prompt, images, sampling, on_partial)
    _, trace = await run(Short(script=lambda tag, s, i: f"{tag} right {i}"), params())
    assert [s.tag for s in trace.stages] == ["SUMMARY", "CAPTION", "REASONING"]
    assert trace.finish_reason == "length"


async def test_a_tight_budget_holds_the_retrace_to_it():
    """Candidates of the same length (the estimates are right): the search stays within its
    budget, down to one candidate of the best chain a stage."""
    script = lambda tag, s, i: f"{tag} word {i} {s.seed}"  # noqa: E731
    engine = FakeEngine(script=script)
    _, full = await run(engine, params(max_retraces=0))
    for share in (0.3, 0.5, 0.8):
        budget = int(full.usage.completion_tokens * share)
        engine = FakeEngine(script=script)
        _, trace = await run(engine, params(max_retraces=3, budget=SearchBudget(tokens=budget)))
        assert trace.usage.completion_tokens <= budget
        assert [s.tag for s in trace.stages] == list(LLAVA_COT.tags)


async def test_under_a_budget_the_first_pass_samples_two():
    """Nothing is known of what a candidate costs before the first: it samples two, not the
    whole width (budget.py's rule for every shape)."""
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right {i}")
    await run(engine, params(beam_width=4, budget=SearchBudget(answers=3.0)))
    assert engine.generate_calls[0][1].n == 2
    engine = FakeEngine(script=lambda tag, s, i: f"{tag} right {i}")
    await run(engine, params(beam_width=4))
    assert engine.generate_calls[0][1].n == 4
