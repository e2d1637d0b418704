"""A width-1 answer in one engine call, cut into stages (server/search/single_call.py), over the
deterministic FAKE engine (fake_engine.py): pure orchestration and splitting logic."""

import itertools

import pytest

from server.search import single_call
from server.search.beam import StageChosen, StageSearch, StageText
from server.search.interface import Constraint, Prompt, Sampling
from server.search.params import SearchParams, SearchShape
from server.search.prompts import PromptBuilder
from server.search.schema import LLAVA_COT
from server.search.trace import Trace
from tests.unit.server.search.fake_engine import (
    CONV,
    FakeEngine,
    cancel_while_generating,
    render_chat_fake,
)

TAGS = list(LLAVA_COT.tags)


class Calls:
    """A search observer that lists the engine calls by kind."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def stage_done(self, stage: str, seconds: float, candidates: int, comparisons: int) -> None:
        return None

    def engine_call(self, kind: str) -> None:
        self.kinds.append(kind)


async def search(engine: FakeEngine, stream: bool = False, **kw
                 ) -> tuple[list[StageText | StageChosen], Trace, list[str]]:
    kw.setdefault("sampling", Sampling())
    calls = Calls()
    params = SearchParams(schema=LLAVA_COT, **kw)
    events = [e async for e in StageSearch(engine, render_chat_fake, calls).run(
        CONV, params, stream_text=stream)]
    assert isinstance(events[-1], Trace)
    return events[:-1], events[-1], calls.kinds


def stages(trace: Trace) -> list[tuple]:
    """Each chosen stage as the search and later prompts see it."""
    return [(s.tag, s.text, s.chosen.closed, s.chosen.token_count, s.chosen.mean_logprob,
             s.chosen.generation.text, s.chosen.generation.token_ids) for s in trace.stages]


def words(n: int) -> str:
    """n words, none repeated (repeated ones would be a loop, cut short)."""
    return "".join(f"w{i} " for i in range(n))


def once(written):
    """The model writes `written` (text, or its tokens) in the one call over several stages;
    stage by stage, each stage's usual text."""
    return lambda stage, sampling, i: written if sampling.stop[0] != f"</{stage}>" else None


def token_ids(engine: FakeEngine, prompt: Prompt) -> tuple[int, ...]:
    """A prompt's tokens as the engine takes them: text parts tokenised, generations as they
    were generated."""
    return tuple(i for part in prompt
                 for i in (engine.tokens_of(part) if isinstance(part, str) else part.token_ids))


async def test_a_greedy_answer_is_one_call_cut_into_the_stages_stage_by_stage_makes():
    engine = FakeEngine()
    _, one, calls = await search(engine)
    assert calls == ["stages"] and len(engine.generate_calls) == 1
    prompt, sampling = engine.generate_calls[0]
    assert prompt.endswith("assistant: <SUMMARY>")  # the first stage's prompt
    assert sampling.stop == ("</CONCLUSION>",) and sampling.n == 1 and sampling.seed is None
    assert sampling.max_tokens == 4 * 128 + 3 * 2  # the caps, and the tags between stages
    _, apart, calls = await search(engine, single_call=False)
    assert calls == ["stage"] * 4
    assert stages(one) == stages(apart)
    assert one.tagged_text() == apart.tagged_text() and one.finish_reason == "stop"
    # the chosen stages, as a later prompt renders them, are token for token the call's own
    builder = PromptBuilder(render_chat_fake, LLAVA_COT)
    chosen = [(s.stage, s.chosen) for s in one.stages]
    later = builder.stage(builder.base(CONV), chosen[:3], LLAVA_COT.answer_stage)
    call = engine.results[0].generations[0]
    assert (token_ids(engine, later) + chosen[3][1].generation.token_ids
            == engine.tokens_of(prompt) + call.token_ids)
    # every token the call generated is counted once, the separators and tags included
    usage = one.usage
    assert usage.candidate_tokens == call.token_count == one.path_tokens + 3 * 2
    assert usage.candidate_prompt_tokens == len(prompt.split())


@pytest.mark.parametrize("apart", [{"constraint": Constraint("choice", ("A", "B"))},
                                   {"stop": ("END",)}, {"stop_token_ids": (7,)},
                                   {"answer_logprobs": 2}])
async def test_an_answer_that_samples_otherwise_is_a_second_call(apart):
    engine = FakeEngine()
    _, trace, calls = await search(engine, **apart)
    assert calls == ["stages", "stage"]
    (_, first), (prompt, second) = engine.generate_calls
    assert first.stop == ("</REASONING>",) and first.max_tokens == 3 * 128 + 2 * 2
    assert (first.constraint, first.stop_token_ids, first.token_logprobs) == (None, (), None)
    assert prompt.endswith("REASONING candidate 0</REASONING>\n\n<CONCLUSION>")
    assert second.stop[0] == "</CONCLUSION>"
    _, stage_by_stage, _ = await search(engine, single_call=False, **apart)
    assert stages(trace) == stages(stage_by_stage)


@pytest.mark.parametrize("per_stage", [
    {"single_call": False}, {"prompted": True}, {"sampling": Sampling(min_tokens=2)},
    {"sampling": Sampling(frequency_penalty=0.5)}, {"sampling": Sampling(presence_penalty=1)}])
async def test_stage_by_stage_where_one_call_cannot_keep_the_sampling_or_is_turned_off(
        per_stage):
    _, trace, calls = await search(FakeEngine(), **per_stage)
    assert calls == ["stage"] * 4 and len(trace.stages) == 4


async def test_each_best_of_n_chain_is_one_call_with_its_own_seed():
    script = lambda stage, sampling, i: f"{stage} seed {sampling.seed}"  # noqa: E731
    kw = {"beam_width": 3, "shape": SearchShape.BEST_OF_N, "selector": "logprob",
          "sampling": Sampling(temperature=0.6, seed=9)}
    engine = FakeEngine(script=script)
    _, trace, calls = await search(engine, **kw)
    assert calls == ["stages"] * 3
    params = SearchParams(schema=LLAVA_COT, sampling=Sampling(seed=9))
    assert sorted(s.seed for _, s in engine.generate_calls) == sorted(
        params.seed("chain", i, "stage", 0) for i in range(3))
    assert all(s.logprobs for _, s in engine.generate_calls)  # the selector reads them
    assert all(len(s.candidates) == 3 for s in trace.stages)
    _, again, _ = await search(FakeEngine(script=script), **kw)
    assert stages(again) == stages(trace)  # the same seed, the same answer


SUMMARY = "S</SUMMARY>\n\n<CAPTION>"
REST = "C</CAPTION>\n\n<REASONING>R</REASONING>\n\n<CONCLUSION>A</CONCLUSION>"


@pytest.mark.parametrize("written, kept", [
    ("S</SUMMARY><CAPTION>" + REST, 1),  # no separator
    ("S</SUMMARY>\n\n<REASONING>R</REASONING>\n\n<CONCLUSION>A</CONCLUSION>", 1),  # wrong stage
    ("S <CAPTION>x</SUMMARY>\n\n<CAPTION>" + REST, 0),  # another stage's tag inside a stage
    (SUMMARY + "C <REASONING> x</CAPTION>\n\n<REASONING>R</REASONING>", 1),
    (SUMMARY + "C</CONCLUSION>", 1),  # the call's stop string inside an earlier stage
    (SUMMARY + "</CAPTION>\n\n<REASONING>R</REASONING>", 1),  # an empty stage
    (SUMMARY + "C</CAPTION>\n\n", 2),  # EOS before the next open tag
    (["S", "</SUMMARY>", "\n", "\n", "<CAPTION>", "C", "</CAPTION>"], 1),  # other tokens between
    (["S", "</SUMMARY>", "\n\n", "<CAPTION>C", "</CAPTION>"], 1),  # a tag's token runs on
])
async def test_where_the_format_breaks_the_search_goes_on_stage_by_stage_from_there(written,
                                                                                      kept):
    engine = FakeEngine(raw=once(written))
    _, trace, calls = await search(engine)
    assert calls == ["stages"] + ["stage"] * (4 - kept)
    assert [s.text for s in trace.stages] == ["S", "C"][:kept] + [
        f"{tag} candidate 0" for tag in TAGS[kept:]]
    for tag, (prompt, _) in zip(TAGS[kept:], engine.generate_calls[1:], strict=True):
        assert prompt.endswith(f"<{tag}>")  # on from the stages kept, as rendered
    assert [s.chosen.closed for s in trace.stages] == [True] * 4


@pytest.mark.parametrize("stream", [True, False])
async def test_a_stage_past_its_cap_ends_the_call_and_is_decoded_again(stream):
    """Streamed, at once; otherwise at the next hand-over (within READ_EVERY tokens)."""
    engine = FakeEngine(raw=once(SUMMARY + words(100)))
    _, trace, calls = await search(engine, stream, default_stage_max_tokens=16)
    assert calls == ["stages", "stage", "stage", "stage"]
    call = engine.results[0].generations[0]
    at_once = 2 + 2 + 17
    assert call.finish_reason == "abort"
    assert (call.token_count == at_once if stream
            else at_once <= call.token_count < at_once + single_call.READ_EVERY)
    assert trace.stages[0].text == "S" and trace.stages[1].text == "CAPTION candidate 0"


async def test_a_token_running_past_a_closing_tag_stays_with_its_stage_as_a_stop_string_keeps_it():
    engine = FakeEngine(raw=once(["S", "</SUMMARY>\n\n", "<CAPTION>", "C", "</CAPTION>"]))
    _, trace, calls = await search(engine)
    assert calls == ["stages"] + ["stage"] * 3
    summary = trace.stages[0].chosen
    assert (summary.text, summary.closed, summary.token_count) == ("S", True, 2)
    assert summary.generation.text == "S</SUMMARY>"


async def test_a_call_ended_by_eos_inside_a_stage_keeps_it_unclosed_as_stage_by_stage_would():
    engine = FakeEngine(raw=once(SUMMARY + "C"))
    _, trace, calls = await search(engine)
    assert calls == ["stages", "stage", "stage"]
    caption = trace.stages[1].chosen
    assert (caption.text, caption.closed, caption.token_count) == ("C", False, 2)  # C, EOS


async def test_a_call_ended_at_the_last_stages_cap_keeps_it_cut_there():
    written = ("a b</SUMMARY>\n\n<CAPTION>c d</CAPTION>\n\n<REASONING>e f</REASONING>\n\n"
               "<CONCLUSION>w w w w w w")
    engine = FakeEngine(raw=once(written))
    _, trace, calls = await search(engine, default_stage_max_tokens=3)
    assert calls == ["stages"]
    assert [(s.text, s.chosen.closed) for s in trace.stages] == [
        ("a b", True), ("c d", True), ("e f", True), ("w w w", False)]
    each = {"SUMMARY": "a b", "CAPTION": "c d", "REASONING": "e f", "CONCLUSION": "w w w w"}
    _, stage_by_stage, _ = await search(FakeEngine(script=lambda stage, s, i: each[stage]),
                                        default_stage_max_tokens=3, single_call=False)
    assert stages(stage_by_stage) == stages(trace)


async def test_the_callers_budget_bounds_the_call_and_ends_the_answer_with_length():
    engine = FakeEngine(script=lambda stage, s, i: "word " * 50)
    _, trace, _ = await search(engine, default_stage_max_tokens=5, max_tokens=12)
    assert engine.generate_calls[0][1].max_tokens == 12 + 3 * 2
    assert [s.tag for s in trace.stages] == ["SUMMARY", "CAPTION", "REASONING"]
    assert trace.path_tokens == 12 and trace.finish_reason == "length"


async def test_a_streamed_answer_streams_each_stage_and_hands_it_on_at_its_closing_tag():
    engine = FakeEngine(script=lambda stage, s, i: f"the {stage} text")
    events, trace, calls = await search(engine, stream=True)
    assert calls == ["stages"]
    kinds = [(type(e).__name__, e.tag if isinstance(e, StageText) else e.result.tag)
             for e in events]
    # each stage: its text as it is decoded, then the stage itself, before the next stage's
    # text (all of it from the one call: the stage was handed on while the call went on)
    expected = []
    for tag in TAGS:
        pieces = [e.text for e in events if isinstance(e, StageText) and e.tag == tag]
        assert len(pieces) > 1 and "".join(pieces) == trace.stages[TAGS.index(tag)].text
        expected += [("StageText", tag)] * len(pieces) + [("StageChosen", tag)]
    assert kinds == expected
    usage = [e.usage.candidate_tokens for e in events if isinstance(e, StageChosen)]
    assert usage == sorted(usage) and usage[-1] <= trace.usage.candidate_tokens


async def test_a_stage_decoded_again_streams_on_from_what_the_call_showed():
    def raw(stage, sampling, i):  # a deterministic model: the same prompt, the same text
        if sampling.stop[0] != f"</{stage}>":
            return SUMMARY + words(40)
        return words(40) if stage == "CAPTION" else None
    events, trace, calls = await search(FakeEngine(raw=raw), stream=True,
                                        default_stage_max_tokens=16)
    assert calls == ["stages", "stage", "stage", "stage"]
    pieces = [e.text for e in events if isinstance(e, StageText) and e.tag == "CAPTION"]
    assert "".join(pieces) == trace.stages[1].text == words(16).strip()


async def test_a_sampled_streamed_answer_is_stage_by_stage():
    """What a stage decoded again shows must extend what was shown: only greedy guarantees it."""
    _, _, calls = await search(FakeEngine(), stream=True, sampling=Sampling(temperature=0.7))
    assert calls == ["stage"] * 4


async def test_cancelling_a_one_call_search_cancels_its_engine_call():
    engine = FakeEngine(delay=10)
    await cancel_while_generating(engine, StageSearch(engine, render_chat_fake).run(
        CONV, SearchParams(schema=LLAVA_COT), stream_text=True))


LOOP = "red " * 40


async def test_a_stage_caught_in_a_loop_is_settled_after_its_first_copy_and_ends_the_call():
    engine = FakeEngine(raw=once(SUMMARY + "Top: " + LOOP + "</CAPTION>\n\n<REASONING>R"))
    events, trace, calls = await search(engine, stream=True, default_stage_max_tokens=64)
    assert calls == ["stages", "stage", "stage"]  # REASONING and CONCLUSION stage by stage
    call = engine.results[0].generations[0]
    assert call.finish_reason == "abort" and call.token_count < 2 + 2 + 20
    caption = trace.stages[1].chosen
    assert (caption.text, caption.closed, caption.cleaned) == ("Top: red", False, ("repetition",))
    assert caption.generation is not None and caption.generation.text == "Top: red"
    assert len(caption.generation.token_ids) == 2  # in later prompts: the text kept
    assert caption.token_count == call.token_count - 4  # counted: all the stage generated
    # the next stage goes on from the text kept, closed by the server
    assert engine.generate_calls[1][0].endswith("<CAPTION>Top: red</CAPTION>\n\n<REASONING>")
    shown = "".join(e.text for e in events if isinstance(e, StageText) and e.tag == "CAPTION")
    assert shown == "Top: red"
    assert trace.usage.candidate_tokens == sum(r.generations[0].token_count
                                               for r in engine.results)


async def test_without_the_repetition_rule_a_loop_runs_to_the_cap():
    def raw(stage, sampling, i):  # the same loop stage by stage, where the cap ends the call
        if sampling.stop[0] != f"</{stage}>":
            return SUMMARY + LOOP
        return LOOP if stage == "CAPTION" else None
    engine = FakeEngine(raw=raw)
    _, trace, calls = await search(engine, default_stage_max_tokens=16, repetition=None)
    caption = trace.stages[1].chosen
    assert caption.text == " ".join(["red"] * 16) and not caption.cleaned
    assert caption.token_count == 16
    assert calls == ["stages", "stage", "stage", "stage"]


async def test_a_tag_inside_a_stage_ends_the_call_and_the_stage_is_cut_before_it():
    def raw(stage, sampling, i):
        if sampling.stop[0] != f"</{stage}>":
            return SUMMARY + "C <CONCLUSION>2</CAPTION>\n\n<REASONING>R"
        return "C <CONCLUSION>2</CAPTION>" if stage == "CAPTION" else None
    engine = FakeEngine(raw=raw)
    _, trace, calls = await search(engine)
    assert calls == ["stages", "stage", "stage", "stage"]
    caption = trace.stages[1].chosen
    assert (caption.text, caption.closed, caption.cleaned) == ("C", False,
                                                               ("cut at <CONCLUSION>",))
    assert engine.generate_calls[2][0].endswith("<CAPTION>C</CAPTION>\n\n<REASONING>")
    # the stage-by-stage CAPTION call was ended at the tag, not decoded to its closing tag
    assert engine.results[1].generations[0].finish_reason == "abort"


async def test_a_call_nothing_streams_is_handed_over_every_few_tokens(monkeypatch):
    """Not at every token: a call whose text nothing streams asks the engine for its output
    every READ_EVERY tokens; streamed, at every token. The stages are the same either way."""
    seen: list[int] = []
    real = single_call.OneCall.read

    def counted(self, partial):
        seen.append(len(partial.token_ids))
        return real(self, partial)

    monkeypatch.setattr(single_call.OneCall, "read", counted)
    written = f"{words(60)}</SUMMARY>\n\n<CAPTION>c</CAPTION>\n\n<REASONING>r</REASONING>" \
              "\n\n<CONCLUSION>3</CONCLUSION>"
    quiet_engine, streamed_engine = FakeEngine(raw=once(written)), FakeEngine(raw=once(written))
    _, quiet, calls = await search(quiet_engine)
    quiet_seen, seen[:] = list(seen), []
    _, streamed, _ = await search(streamed_engine, stream=True)
    assert calls == ["stages"] and stages(quiet) == stages(streamed)
    assert [s.partial_every for _, s in quiet_engine.generate_calls] == [single_call.READ_EVERY]
    assert [s.partial_every for _, s in streamed_engine.generate_calls] == [1]
    total = quiet_engine.results[0].generations[0].token_count
    assert len(seen) >= total - 1  # every token (the last one's output is the call's own)
    assert len(quiet_seen) <= total // single_call.READ_EVERY + 3
    assert all(b - a <= single_call.READ_EVERY for a, b in itertools.pairwise(quiet_seen))
