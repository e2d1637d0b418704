"""Search results as OpenAI wire objects: a stage with its candidates, the usage, the
answer's token logprobs. Pure conversions, shared by the JSON and the streamed responses."""

from __future__ import annotations

from server.api.protocol import (
    ChoiceLogprobs,
    ComparisonOut,
    CompletionTokensDetails,
    PromptTokensDetails,
    RetraceOut,
    StageCandidateOut,
    StageOut,
    TokenLogprobOut,
    TopLogprob,
    UsageOut,
)
from server.search.interface import TokenLogprob
from server.search.params import SearchParams, SearchShape
from server.search.trace import StageResult, Trace, Usage


def stage_out(result: StageResult) -> StageOut:
    finite = lambda x: x if x != float("-inf") else None  # noqa: E731
    scores = result.selection.scores or (None,) * len(result.candidates)
    parents = result.parents or (None,) * len(result.candidates)
    attempts = result.attempts or (None,) * len(result.candidates)
    return StageOut(
        name=result.name, tag=result.tag, text=result.text, chosen_index=result.chosen_index,
        selected_by=result.selection.method,
        candidates=[StageCandidateOut(text=c.text, tokens=c.token_count,
                                      mean_logprob=finite(c.mean_logprob), closed=c.closed,
                                      score=score, cleaned=list(c.cleaned), parent=parent,
                                      attempt=attempt)
                    for c, score, parent, attempt in zip(result.candidates, scores, parents,
                                                         attempts, strict=True)],
        comparisons=[ComparisonOut(**c.__dict__) for c in result.comparisons],
        fallback=result.fallback)


def retraces_out(trace: Trace, params: SearchParams) -> list[RetraceOut] | None:
    """A retracing search's retraces (None for the other shapes)."""
    if params.shape is not SearchShape.RETRACE or not params.branching:
        return None
    return [RetraceOut(stage=r.stage, best_score=r.best, back_to=r.back_to)
            for r in trace.retraces]


def usage_out(traces: list[Trace]) -> UsageOut:
    return usage_of([t.usage for t in traces], sum(t.answer_tokens for t in traces))


def usage_of(usages: list[Usage], answer_tokens: int) -> UsageOut:
    """OpenAI usage of one request's searches; reasoning tokens are all but the answers'."""
    prompt = sum(u.prompt_tokens for u in usages)
    completion = sum(u.completion_tokens for u in usages)
    return UsageOut(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=sum(u.cached_tokens for u in usages)),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=completion - answer_tokens,
            judge_tokens=sum(u.judge_tokens for u in usages),
            summary_tokens=sum(u.summary_tokens for u in usages)))


def logprobs_out(tokens: tuple[TokenLogprob, ...] | None) -> ChoiceLogprobs | None:
    if tokens is None:
        return None
    return ChoiceLogprobs(content=[
        TokenLogprobOut(**TopLogprob.of(t.token, t.logprob).model_dump(),
                        top_logprobs=[TopLogprob.of(tok, lp) for tok, lp in t.top])
        for t in tokens])


def answer_logprobs(result: StageResult, params: SearchParams) -> ChoiceLogprobs | None:
    """The chosen answer's token logprobs, where the request asked for them."""
    if params.answer_logprobs is None:
        return None
    return logprobs_out(result.chosen.token_logprobs((result.stage.close_tag, *params.stop)))
