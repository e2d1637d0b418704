"""The stage-level search loop over a deterministic FAKE engine (pure orchestration logic)."""

import asyncio
import itertools

import pytest

from server.search.beam import StageChosen, StageSearch, Summarized
from server.search.interface import Constraint, PromptTooLong, Sampling, prompt_text
from server.search.params import Pipeline, SearchParams, SearchShape, Selector
from server.search.schema import LLAVA_COT, THINK_ANSWER
from server.search.trace import Trace
from tests.unit.server.search.fake_engine import (
    CONV,
    FakeEngine,
    cancel_while_generating,
    render_chat_fake,
)


async def run(engine, params) -> tuple[list[StageChosen], Trace]:
    events = [e async for e in StageSearch(engine, render_chat_fake).run(CONV, params)]
    return events[:-1], events[-1]


def params(**kw) -> SearchParams:
    kw.setdefault("sampling", Sampling(temperature=0.6, top_p=0.9))
    return SearchParams(schema=LLAVA_COT, **kw)


async def test_greedy_walks_every_stage_with_one_call_each():
    """Stage by stage (--no-single-call; a one-call answer: test_single_call.py)."""
    engine = FakeEngine()
    events, trace = await run(engine, params(beam_width=1, sampling=Sampling(),
                                             single_call=False))
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


async def test_judge_does_not_compare_candidates_that_show_the_same_text():
    """Candidates 0 and 1 write the same plain text, 2 and 3 "best": the first round's pairs
    (0, 1) and (2, 3) are not judged, the final between different texts is (both orders), and
    the best one still wins."""
    texts = ["plain", "plain", "best", "best"]
    engine = FakeEngine(script=lambda stage, s, i: f"{stage} {texts[i]}")
    _, trace = await run(engine, params(beam_width=4))
    for stage in trace.stages:
        assert stage.text == f"{stage.tag} best"
        judged = [c for c in stage.comparisons if c.confidence is not None]
        skipped = [c for c in stage.comparisons if c.confidence is None]
        assert len(stage.comparisons) == 3 and len(judged) == 1 and len(skipped) == 2
        for c in skipped:  # the earlier candidate goes on
            assert stage.candidates[c.first].text == stage.candidates[c.second].text
            assert c.winner == min(c.first, c.second)
    assert len(engine.choose_calls) == 4 * 1 * 2


async def test_judge_asks_nothing_when_every_candidate_is_the_same():
    engine = FakeEngine(script=lambda stage, s, i: "same text")
    _, trace = await run(engine, params(beam_width=4))
    assert not engine.choose_calls and trace.usage.judge_tokens == 0
    assert all(s.chosen_index == 0 and len(s.comparisons) == 3 for s in trace.stages)


async def test_verify_asks_each_distinct_question_once_and_scores_every_candidate():
    """Candidates 0 and 2 (and 1 and 3) write the same: one verification each per stage, and
    each copy gets its twin's score."""
    texts = ["plain", "right", "plain", "right"]
    engine = FakeEngine(script=lambda stage, s, i: f"{stage} {texts[i]}")
    _, trace = await run(engine, params(beam_width=4, selector="verify"))
    assert len(engine.choose_calls) == 4 * 2
    assert len(set(engine.choose_calls)) == len(engine.choose_calls)  # nothing asked twice
    for stage in trace.stages:
        assert stage.selection.scores == pytest.approx((0.2, 0.9, 0.2, 0.9))
        assert stage.chosen_index == 1


@pytest.mark.parametrize("selector", ["verify", "weighted_vote"])
async def test_verify_asks_nothing_when_every_candidate_would_be_asked_the_same(selector):
    engine = FakeEngine(script=lambda stage, s, i: f"{stage} same")
    _, trace = await run(engine, params(beam_width=4, selector=selector))
    assert not engine.choose_calls and trace.usage.judge_tokens == 0
    for stage in trace.stages:
        weighs = stage.tag == "CONCLUSION" or selector == "verify"  # weighted_vote: answers
        assert stage.chosen_index == 0
        assert stage.selection.method == (selector if weighs else "verify")
        assert stage.selection.scores == (None,) * 4


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
    events, trace = await run(engine, params(beam_width=3, shape=SearchShape.BEST_OF_N,
                                             sampling=Sampling(temperature=0.6, seed=5)))
    # every stage is final only once the chains are done: they come then, the winner's
    assert [e.result.tag for e in events] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    assert [e.result for e in events] == trace.stages
    assert len(engine.generate_calls) == 3  # each chain's stages in one call
    assert all(s.n == 1 and s.stop == ("</CONCLUSION>",) for _, s in engine.generate_calls)
    assert len(trace.stages) == 4
    assert all(len(s.candidates) == 3 for s in trace.stages)
    assert len(trace.stages[-1].comparisons) == 2
    assert "complete answer" in engine.choose_calls[0]


async def test_prompt_too_long_at_the_first_stage_is_raised():
    class TooLong(FakeEngine):
        async def generate(self, prompt, images, sampling, on_partial=None):
            raise PromptTooLong("prompt has 9000 tokens, the context 2048")
    with pytest.raises(PromptTooLong):
        await run(TooLong(), params())


async def test_cancelling_the_search_cancels_every_outstanding_engine_call():
    engine = FakeEngine(delay=10)
    task = asyncio.create_task(run(engine, params(beam_width=4, shape=SearchShape.BEST_OF_N)))
    await asyncio.sleep(0.05)
    assert engine.in_flight == 4
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.in_flight == 0


async def test_verify_scores_each_candidate_on_its_own_transcript_and_picks_the_best():
    best = lambda stage, sampling, i: f"{stage} best" if i == 1 else f"{stage} plain {i}"  # noqa: E731
    engine = FakeEngine(script=best)
    _, trace = await run(engine, params(beam_width=4, selector="verify"))
    assert len(engine.choose_calls) == 4 * 4  # one verification per candidate, no pairs
    branch_prompts = [p for p, _ in engine.generate_calls]
    for stage in trace.stages:
        assert stage.chosen_index == 1 and stage.selection.method == "verify"
        assert stage.selection.scores == pytest.approx((0.2, 0.9, 0.2, 0.2))
        for candidate in stage.candidates:  # each verification continues its candidate
            transcript = f"<{stage.tag}>{candidate.text}</{stage.tag}>\n\n[Verify]"
            assert sum(transcript in call for call in engine.choose_calls) == 1
    assert all(any(call.startswith(b) for b in branch_prompts) for call in engine.choose_calls)
    assert not any(s.logprobs for _, s in engine.generate_calls)  # the scores decide alone
    assert trace.usage.judge_tokens == 16


async def test_vote_takes_the_most_common_answer_and_the_consensus_before_it():
    answers = ["3", "4", "three.", "4"]
    def script(stage, sampling, i):
        if stage == "CONCLUSION":
            return answers[i]
        return ["red circle", "red circle left", "blue", "red circle"][i]
    engine = FakeEngine(script=script)
    _, trace = await run(engine, params(beam_width=4, selector="vote"))
    assert not engine.choose_calls  # voting asks the engine nothing
    assert trace.stages[0].text == "red circle"  # the text closest to the others
    # "3" and "4" have two votes each; candidate 0 has the best logprob in the fake
    assert trace.answer == "3" and trace.stages[-1].selection.method == "vote"


async def test_weighted_vote_weighs_answers_by_the_verifier():
    answers = ["4", "4", "3 right", "3 right"]
    engine = FakeEngine(script=lambda stage, s, i: answers[i] if stage == "CONCLUSION"
                        else f"{stage} {i}")
    _, trace = await run(engine, params(beam_width=4, selector="weighted_vote"))
    assert trace.answer == "3 right"  # 2 x 0.9 beats 2 x 0.2
    assert trace.stages[-1].selection.method == "weighted_vote"


async def test_auto_votes_on_a_clear_majority_and_verifies_a_split():
    """FAKE engine: seven of eight answers the same (after normalisation) is a clear majority;
    a split caption is verified."""
    def script(stage, sampling, i):
        if stage == "CONCLUSION":
            return ["2", "2", "two", "2", "two", "2", "2", "5"][i]
        return ["x best", "y", "z", "w", "v", "u", "t", "s"][i] if stage == "CAPTION" else "same"
    engine = FakeEngine(script=script)
    _, trace = await run(engine, params(beam_width=8, selector="auto"))
    methods = [s.selection.method for s in trace.stages]
    assert methods == ["agree", "verify", "agree", "vote"]
    assert trace.stages[1].text == "x best" and trace.answer == "2"
    assert len(engine.choose_calls) == 8  # only the split caption stage was verified


async def test_auto_verifies_where_three_of_four_agree():
    """FAKE engine: 3 of 4 is not a clear majority (CLEAR_MAJORITY): the verifier decides,
    and here it prefers the lone right answer."""
    from server.search.selection import CLEAR_MAJORITY

    assert 3 / 4 <= CLEAR_MAJORITY < 7 / 8
    engine = FakeEngine(script=lambda stage, s, i: ["2", "2", "two", "5 best"][i]
                        if stage == "CONCLUSION" else "same")
    _, trace = await run(engine, params(beam_width=4, selector="auto"))
    assert [s.selection.method for s in trace.stages] == ["agree", "agree", "agree", "verify"]
    assert trace.answer == "5 best"


@pytest.mark.parametrize("selector", ["verify", "vote", "weighted_vote", "logprob", "auto"])
async def test_best_of_n_selects_whole_chains_with_every_selector(selector):
    params_ = params(beam_width=3, shape=SearchShape.BEST_OF_N, selector=selector,
                     sampling=Sampling(temperature=0.6, seed=11))
    right = {params_.seed("chain", 1, "stage", k) for k in range(4)}  # chain 1 of 3 is right
    engine = FakeEngine(script=lambda stage, s, i: (
        f"{stage} right" if s.seed in right else f"{stage} wrong"))
    _, trace = await run(engine, params_)
    assert len(engine.generate_calls) == 3 and len(trace.stages[-1].candidates) == 3
    verifications = [c for c in engine.choose_calls if "[Verify]" in c]
    if selector in ("verify", "weighted_vote", "auto"):  # chains 0 and 2 the same: asked once
        assert len(verifications) == 2 and len(set(verifications)) == 2
        assert all(c.count("</CONCLUSION>") == 1 and c.count("<SUMMARY>") == 1
                   for c in verifications)  # each verifies its own whole chain
    else:
        assert not engine.choose_calls
    # vote trusts the wrong pair (auto verifies: 2 of 3 is no clear majority); logprob the
    # first chain
    expected = ("CONCLUSION right" if selector in ("verify", "weighted_vote", "auto")
                else "CONCLUSION wrong")
    assert trace.answer == expected


async def test_a_selection_prompt_too_long_for_the_context_falls_back_to_logprob():
    class ShortContext(FakeEngine):
        async def choose(self, prompt, images, options):
            raise PromptTooLong("judge prompt has 2805 tokens, the context 2048")
    engine = ShortContext()
    _, trace = await run(engine, params(beam_width=3, selector="judge"))
    assert len(trace.stages) == 4 and trace.finish_reason == "stop"
    assert all(s.selection.method == "logprob (context full)" for s in trace.stages)
    assert all(s.chosen_index == 0 for s in trace.stages)  # the fake's best logprob


async def test_a_constrained_answer_that_ends_at_its_grammar_counts_as_closed():
    """FAKE engine: the answer stage's text has no closing tag, as under a grammar."""
    engine = FakeEngine(script=lambda stage, s, i: "B" if s.constraint else f"{stage} text")
    _, trace = await run(engine, params(beam_width=2, selector=Selector.LOGPROB,
                                        constraint=Constraint("choice", ("A", "B"))))
    answer = trace.stages[-1]
    assert trace.answer == "B" and all(c.closed for c in answer.candidates)
    constrained = [s for _, s in engine.generate_calls if s.constraint is not None]
    assert len(constrained) == 1 and constrained[0].n == 2


async def test_one_candidate_stages_stream_their_text_as_it_is_decoded():
    """FAKE engine that decodes a word at a time."""
    from server.search.beam import StageText

    engine = FakeEngine(script=lambda stage, s, i: f"the {stage} text </{stage}>")
    search = StageSearch(engine, render_chat_fake)
    events = [e async for e in search.run(CONV, params(beam_width=1), stream_text=True)]
    chosen = [e for e in events if isinstance(e, StageChosen)]
    assert [c.result.tag for c in chosen] == list(LLAVA_COT.tags)
    for result in (c.result for c in chosen):
        pieces = [e.text for e in events if isinstance(e, StageText) and e.tag == result.tag]
        assert len(pieces) > 1 and "".join(pieces) == result.text
    assert isinstance(events[-1], Trace)
    order = [e.tag if isinstance(e, StageText) else e.result.tag for e in events[:-1]]
    assert order == sorted(order, key=list(LLAVA_COT.tags).index)  # stage after stage
    branching = [e async for e in search.run(CONV, params(beam_width=2), stream_text=True)]
    assert not any(isinstance(e, StageText) for e in branching)


async def test_cancelling_a_streamed_search_cancels_its_engine_call():
    engine = FakeEngine(delay=10)  # sampled: stage by stage, not one call
    await cancel_while_generating(engine, StageSearch(engine, render_chat_fake).run(
        CONV, params(beam_width=1), stream_text=True))


async def test_verify_quotes_the_chosen_caption_in_stage_search_and_each_chains_own_in_best_of_n():
    """FAKE engine: which caption each verification quotes (pure orchestration)."""
    engine = FakeEngine(script=lambda stage, sampling, i: f"{stage} {i}")
    await run(engine, params(beam_width=2, selector="verify"))
    by_stage = {tag: [c for c in engine.choose_calls if f"Is the {tag} stage" in c]
                for tag in LLAVA_COT.tags}
    assert not any("Again:" in c for tag in ("SUMMARY", "CAPTION") for c in by_stage[tag])
    for tag in ("REASONING", "CONCLUSION"):
        assert len(by_stage[tag]) == 2
        assert all("[Verify] Again: <CAPTION>CAPTION 0</CAPTION>\n" in c for c in by_stage[tag])

    engine = FakeEngine(script=lambda stage, sampling, i: f"{stage} {sampling.seed}")
    await run(engine, params(beam_width=3, selector="verify", shape=SearchShape.BEST_OF_N,
                             sampling=Sampling(temperature=0.6, seed=5)))
    assert len(engine.choose_calls) == 3
    for call in engine.choose_calls:  # each chain's check quotes that chain's own caption
        caption = call.split("<CAPTION>")[1].split("</CAPTION>")[0]
        assert call.count(f"<CAPTION>{caption}</CAPTION>") == 2
    assert len({c.split("Again: ")[1] for c in engine.choose_calls}) == 3


class Sinks(FakeEngine):
    """The FAKE engine, noting what each call was given to read its completions with."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sinks: list[object] = []

    async def generate(self, prompt, images, sampling, on_partial=None):
        self.sinks.append(on_partial)
        return await super().generate(prompt, images, sampling, on_partial)


async def test_each_candidate_caught_in_a_loop_is_ended_alone_and_keeps_its_first_copy():
    looping = lambda stage, s, i: "so " + "red " * 40 if i == 1 else f"{stage} plain"  # noqa: E731
    engine = Sinks(script=looping)
    _, trace = await run(engine, params(beam_width=2, selector=Selector.LOGPROB,
                                        default_stage_max_tokens=64))
    assert all(isinstance(s, list) and len(s) == 2 for s in engine.sinks)  # one per candidate
    for stage, result in zip(trace.stages, engine.results, strict=True):
        plain, loop = stage.candidates
        assert (plain.text, plain.closed, plain.cleaned) == (f"{stage.tag} plain", True, ())
        assert (loop.text, loop.closed, loop.cleaned) == ("so red", False, ("repetition",))
        assert loop.generation.text == "so red" and len(loop.generation.token_ids) == 2
        ended = result.generations[1]
        assert ended.finish_reason == "abort" and ended.token_count < 20  # not to the cap
        assert loop.token_count == ended.token_count  # what it cost


async def test_a_candidate_empty_after_hygiene_is_not_chosen():
    leaking = lambda stage, s, i: (f"<SUMMARY>x</{stage}>" if i == 0  # noqa: E731
                                   else f"{stage} ok</{stage}>")
    _, trace = await run(FakeEngine(script=leaking),
                         params(beam_width=2, selector=Selector.LOGPROB))
    for stage in trace.stages[1:]:
        assert stage.candidates[0].text == "" and not stage.candidates[0].usable
        assert stage.candidates[0].cleaned == ("cut at <SUMMARY>",)
        assert stage.text == f"{stage.tag} ok"


async def test_without_the_repetition_rule_the_engine_gets_no_sinks():
    engine = Sinks()
    await run(engine, params(beam_width=2, repetition=None))
    assert engine.sinks == [None] * 4


async def test_a_structured_answer_is_never_cut_as_a_loop():
    engine = FakeEngine(script=lambda stage, s, i: '[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]'
                        if s.constraint else f"{stage} text")
    _, trace = await run(engine, params(beam_width=1, sampling=Sampling(),
                                        constraint=Constraint("json_object")))
    assert trace.answer == "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"


async def test_a_loop_is_not_ended_before_the_callers_min_tokens():
    engine = FakeEngine(script=lambda stage, s, i: "red " * 40)
    _, trace = await run(engine, params(beam_width=1, default_stage_max_tokens=30,
                                        sampling=Sampling(min_tokens=30)))
    assert all(r.generations[0].token_count == 30 for r in engine.results)
    assert all(s.text == "red" and s.chosen.cleaned == ("repetition",) for s in trace.stages)


def summarizing(**kw) -> SearchParams:
    return params(pipeline=Pipeline.REASON_SUMMARIZE, **kw)


async def test_reason_summarize_answers_with_a_summariser_call_after_the_whole_chain():
    engine = FakeEngine(script=lambda stage, s, i: f"{stage} best" if i == 0 else
                        f"{stage} plain {i}")
    summary_prompts = []
    base_generate = engine.generate

    async def generate(prompt, images, sampling, on_partial=None):
        text = prompt_text(prompt)
        if "[Summarize]" in text:
            summary_prompts.append(text)
            engine.script = lambda stage, s, i: "7"
        return await base_generate(prompt, images, sampling, on_partial)
    engine.generate = generate
    events, trace = await run(engine, summarizing(beam_width=2))
    assert [type(e).__name__ for e in events] == ["StageChosen"] * 4 + ["Summarized"]
    summarized = events[-1]
    # the summariser reads the search's whole chain, in its own transcript (prefix-cached)
    [prompt] = summary_prompts
    chain = "".join(f"<{s.tag}>{s.text}</{s.tag}>\n\n" for s in trace.stages)
    assert prompt.endswith(chain + "[Summarize] Is the answer above correct? Answer again: "
                           "<CONCLUSION>")
    assert trace.reasoner_answer.text == "CONCLUSION best"
    assert trace.answer == summarized.result.text == "7" and not summarized.agreed
    assert summarized.result.selection.method == "summarizer"
    summary_call = engine.results[-1]
    assert trace.usage.summary_tokens == summary_call.generations[0].token_count > 0
    assert trace.usage.summary_prompt_tokens == summary_call.prompt_tokens
    assert trace.usage.completion_tokens == (trace.usage.candidate_tokens
                                             + trace.usage.judge_tokens
                                             + trace.usage.summary_tokens)
    assert trace.answer_tokens == summary_call.generations[0].token_count
    stops = engine.generate_calls[-1][1].stop
    assert stops == ("</CONCLUSION>",)  # the answer stage's sampling


async def test_a_summariser_that_agrees_is_counted_so():
    engine = FakeEngine()
    events, trace = await run(engine, summarizing(beam_width=1, sampling=Sampling()))
    assert isinstance(events[-1], Summarized) and events[-1].agreed
    assert trace.summary_agreed and trace.answer == trace.reasoner_answer.text


async def test_best_of_n_chains_are_summarised_after_the_winner_is_chosen():
    engine = FakeEngine(script=lambda stage, s, i: f"{stage} seed {s.seed}")
    events, trace = await run(engine, summarizing(beam_width=3, shape=SearchShape.BEST_OF_N,
                                                  sampling=Sampling(temperature=0.6, seed=5)))
    assert [type(e).__name__ for e in events] == ["StageChosen"] * 4 + ["Summarized"]
    prompt, _ = engine.generate_calls[-1]
    assert trace.tagged_text() in prompt and prompt.endswith("Answer again: <CONCLUSION>")
    assert trace.summary is events[-1].result


async def test_no_summary_when_the_budget_ended_the_chain():
    engine = FakeEngine(script=lambda stage, s, i: "word " * 50)
    events, trace = await run(engine, summarizing(beam_width=1, default_stage_max_tokens=5,
                                                  max_tokens=12))
    assert trace.finish_reason == "length" and trace.summary is None
    assert not any(isinstance(e, Summarized) for e in events)
    assert all("[Summarize]" not in p for p, _ in engine.generate_calls)


async def test_a_greedy_candidate_comes_first_beside_the_samples():
    """greedy_candidate: each branching call is one greedy continuation and width - 1 samples."""
    def writes(stage, sampling, i):
        return f"{stage} greedy" if sampling.temperature == 0 else f"{stage} sample {i}"
    engine = FakeEngine(script=writes)
    _, trace = await run(engine, params(beam_width=4, selector=Selector.LOGPROB,
                                        greedy_candidate=True))
    calls = [s for _, s in engine.generate_calls]
    assert len(calls) == 8  # two calls a stage
    assert sorted((s.n, s.temperature) for s in calls) == [(1, 0.0)] * 4 + [(3, 0.6)] * 4
    assert all(s.seed is None for s in calls if s.temperature == 0)
    for stage in trace.stages:
        assert [c.text for c in stage.candidates] == [
            f"{stage.tag} greedy", *(f"{stage.tag} sample {i}" for i in range(3))]

    engine = FakeEngine(script=writes)
    _, trace = await run(engine, params(beam_width=4, selector=Selector.LOGPROB))
    assert all(s.n == 4 and s.temperature == 0.6 for _, s in engine.generate_calls)
    assert all("greedy" not in c.text for s in trace.stages for c in s.candidates)

    # the samples unusable: the greedy candidate is kept, and greedy is not asked again
    engine = FakeEngine(script=lambda stage, s, i: "" if s.temperature > 0 else "greedy")
    _, trace = await run(engine, params(beam_width=4, greedy_candidate=True))
    assert all(not s.fallback and s.text == "greedy" for s in trace.stages)
    assert len(engine.generate_calls) == 8


async def test_a_greedy_candidate_in_best_of_n_is_the_first_chain():
    engine = FakeEngine(script=lambda stage, s, i: f"{stage} t{s.temperature}")
    _, trace = await run(engine, params(beam_width=3, shape=SearchShape.BEST_OF_N,
                                        selector=Selector.VOTE, greedy_candidate=True))
    assert sorted(s.temperature for _, s in engine.generate_calls) == [0.0, 0.6, 0.6]
    assert [c.text for c in trace.stages[0].candidates] == [
        "SUMMARY t0.0", "SUMMARY t0.6", "SUMMARY t0.6"]
