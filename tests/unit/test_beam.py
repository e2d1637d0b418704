"""The stage-level search loop over a deterministic FAKE engine (pure orchestration logic)."""

import asyncio
import itertools

import pytest

from server.search.beam import SearchParams, StageChosen, StageSearch
from server.search.interface import PromptTooLong, Sampling
from server.search.prompts import Conversation
from server.search.schema import LLAVA_COT, THINK_ANSWER
from server.search.trace import Trace
from tests.unit.fake_engine import FakeEngine, render_chat_fake

CONV = Conversation(({"role": "user", "content": [{"type": "image"},
                                                   {"type": "text", "text": "How many?"}]},),
                    ("IMAGE",))


async def run(engine, params) -> tuple[list[StageChosen], Trace]:
    events = [e async for e in StageSearch(engine, render_chat_fake).run(CONV, params)]
    return events[:-1], events[-1]


def params(**kw) -> SearchParams:
    kw.setdefault("sampling", Sampling(temperature=0.6, top_p=0.9))
    return SearchParams(schema=LLAVA_COT, **kw)


async def test_greedy_walks_every_stage_with_one_call_each():
    engine = FakeEngine()
    events, trace = await run(engine, params(beam_width=1, sampling=Sampling()))
    assert [e.result.tag for e in events] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    assert len(engine.generate_calls) == 4 and not engine.choose_calls
    assert trace.answer == "CONCLUSION candidate 0"
    # each stage's prompt extends the previous one byte for byte (prefix-cache friendly)
    prompts = [p for p, _ in engine.generate_calls]
    for before, after in itertools.pairwise(prompts):
        assert after.startswith(before.rsplit("<", 1)[0])
    assert prompts[1].endswith("<SUMMARY>SUMMARY candidate 0</SUMMARY>\n\n<CAPTION>")
    stops = [s.stop for _, s in engine.generate_calls]
    assert stops[0] == ("</SUMMARY>",)


async def test_judge_beam_of_4_branches_once_per_stage_and_judges_n_minus_1_pairs():
    best = lambda stage, sampling, i: f"{stage} best" if i == 2 else f"{stage} plain {i}"  # noqa: E731
    engine = FakeEngine(script=best)
    _, trace = await run(engine, params(beam_width=4))
    assert len(engine.generate_calls) == 4
    assert all(s.n == 4 for _, s in engine.generate_calls)
    for stage in trace.stages:
        assert len(stage.candidates) == 4
        assert len(stage.comparisons) == 3
        assert stage.chosen_index == 2
    assert len(engine.choose_calls) == 4 * 3 * 2  # both orders of each comparison
    # every judge prompt extends its stage's branch prompt (served from the prefix cache)
    branch_prompts = [p for p, _ in engine.generate_calls]
    assert all(any(j.startswith(b) for b in branch_prompts) for j in engine.choose_calls)
    assert not any(s.logprobs for _, s in engine.generate_calls)  # the judge does not read them
    assert trace.answer == "CONCLUSION best"
    usage = trace.usage
    assert usage.candidate_tokens == sum(c.token_count for s in trace.stages
                                         for c in s.candidates)
    assert usage.judge_tokens == len(engine.choose_calls)
    assert usage.completion_tokens == usage.candidate_tokens + usage.judge_tokens


async def test_logprob_selector_makes_no_judge_calls():
    engine = FakeEngine()
    _, trace = await run(engine, params(beam_width=3, selector="logprob"))
    assert not engine.choose_calls
    assert all(s.logprobs for _, s in engine.generate_calls)
    assert all(s.chosen_index == 0 for s in trace.stages)  # fake gives candidate 0 the best


async def test_auto_skips_the_judge_when_candidates_agree():
    engine = FakeEngine(script=lambda stage, s, i: "same answer")
    _, trace = await run(engine, params(beam_width=4, selector="auto"))
    assert not engine.choose_calls
    assert len(trace.stages) == 4


async def test_all_empty_candidates_fall_back_to_one_greedy_candidate():
    def script(stage, sampling, i):
        return "" if sampling.temperature > 0 else "greedy"
    engine = FakeEngine(script=script)
    _, trace = await run(engine, params(beam_width=4))
    assert all(s.fallback and s.text == "greedy" for s in trace.stages)
    assert len(engine.generate_calls) == 8


async def test_model_that_never_closes_gets_its_stage_closed_and_continues():
    engine = FakeEngine(script=lambda stage, s, i: "word " * 50)
    _, trace = await run(engine, params(beam_width=2, default_stage_max_tokens=5))
    assert len(trace.stages) == 4
    assert all(not s.chosen.closed for s in trace.stages)
    assert trace.finish_reason == "stop"


async def test_budget_ending_before_the_answer_reports_length():
    engine = FakeEngine(script=lambda stage, s, i: "word " * 50)
    _, trace = await run(engine, params(beam_width=1, default_stage_max_tokens=5, max_tokens=12))
    assert [s.tag for s in trace.stages] == ["SUMMARY", "CAPTION", "REASONING"]
    assert trace.path_tokens <= 12
    assert trace.finish_reason == "length"


async def test_user_stop_strings_apply_to_the_answer_stage_only():
    engine = FakeEngine()
    await run(engine, params(beam_width=1, stop=("END",)))
    stops = [s.stop for _, s in engine.generate_calls]
    assert stops[-1] == ("</CONCLUSION>", "END") and "END" not in stops[0]


async def test_think_answer_schema_has_two_stages():
    engine = FakeEngine()
    _, trace = await run(engine, SearchParams(schema=THINK_ANSWER, beam_width=1))
    assert [s.tag for s in trace.stages] == ["think", "answer"]
    assert trace.answer == "answer candidate 0"


async def test_best_of_n_samples_whole_chains_then_judges_once():
    engine = FakeEngine(script=lambda stage, s, i: f"{stage} seed {s.seed}")
    events, trace = await run(engine, params(beam_width=3, selector="best_of_n",
                                             sampling=Sampling(temperature=0.6, seed=5)))
    assert not events  # no stage is final before the end
    assert len(engine.generate_calls) == 3 * 4
    assert all(s.n == 1 for _, s in engine.generate_calls)
    assert len(trace.stages) == 4
    assert all(len(s.candidates) == 3 for s in trace.stages)
    assert len(trace.stages[-1].comparisons) == 2
    assert "complete answer" in engine.choose_calls[0]


async def test_prompt_too_long_at_the_first_stage_is_raised():
    class TooLong(FakeEngine):
        async def generate(self, prompt, images, sampling):
            raise PromptTooLong("prompt has 9000 tokens, the context 2048")
    with pytest.raises(PromptTooLong):
        await run(TooLong(), params())


async def test_cancelling_the_search_cancels_every_outstanding_engine_call():
    engine = FakeEngine(delay=10)
    task = asyncio.create_task(run(engine, params(beam_width=4, selector="best_of_n")))
    await asyncio.sleep(0.05)
    assert engine.in_flight == 4
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.in_flight == 0
