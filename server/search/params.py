"""What one search is asked to do: its shape, its selector, its caps and sampling, and the one
rule by which every seed of a request is derived. Pure data; no engine, no HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from server.search.budget import SearchBudget
from server.search.interface import Constraint, Sampling
from server.search.repetition import RepetitionRule
from server.search.schema import Stage, StageSchema

SEED_LIMIT = 2**63  # seeds stay in vLLM's (and OpenAI's) signed 64-bit range


class Selector(StrEnum):
    """How one candidate is picked out of several (a stage's candidates, or best-of-N's chains).
    The names are the API's `selector` values."""

    JUDGE = "judge"  # pairwise knockout judged by the model (the paper's method)
    VERIFY = "verify"  # pointwise: P("yes") to a verification question about each candidate
    VOTE = "vote"  # self-consistency: the most common answer, or the consensus text
    WEIGHTED_VOTE = "weighted_vote"  # answers weighted by their verifier scores
    LOGPROB = "logprob"  # highest mean token log-probability, no extra call
    AUTO = "auto"  # no call when the candidates agree, a vote when it is decisive, else verify


class SearchShape(StrEnum):
    """Where the search branches: at every stage, or only over whole answers."""

    STAGE = "stage"  # stage-level beam search: branch -> select -> append, stage by stage
    BEST_OF_N = "best_of_n"  # N complete answers, one selected at the end (the paper's baseline)
    # SWIRES-style: the best `keep` of each stage's candidates go on, each branching again; a
    # stage whose best verifier score is below a threshold sends the search back a stage
    RETRACE = "retrace"


class Pipeline(StrEnum):
    """Who answers. The names are the API's `pipeline` values."""

    SEARCH = "search"  # the search's answer stage is the answer
    # Insight-V's two agents: the search's whole chain is the reasoning; a summariser call reads
    # it after the question and the image, and answers (overruling a chain it finds wrong)
    REASON_SUMMARIZE = "reason_summarize"


def derive_seed(seed: int | None, *path: int | str) -> int | None:
    """The seed of one part of a request (a choice, a chain, a stage, a sample), from the
    request's seed and the part's path. Distinct paths get unrelated seeds; the same path always
    the same one. The only place seeds are derived."""
    if seed is None:
        return None
    digest = hashlib.blake2b(repr((seed, *path)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SEED_LIMIT


@dataclass(frozen=True)
class SearchParams:
    schema: StageSchema
    beam_width: int = 1
    selector: Selector = Selector.JUDGE
    shape: SearchShape = SearchShape.STAGE
    stage_max_tokens: Mapping[str, int] = field(default_factory=dict)
    default_stage_max_tokens: int = 128
    max_tokens: int | None = None  # budget for the returned path (all chosen stages)
    sampling: Sampling = field(default_factory=Sampling)
    # what applies to the answer stage only (the reasoning stays free):
    stop: tuple[str, ...] = ()  # the caller's stop strings
    stop_token_ids: tuple[int, ...] = ()
    constraint: Constraint | None = None  # structured output (response_format, choice, ...)
    answer_logprobs: int | None = None  # per-token logprobs of the answer, with k alternatives
    judge_both_orders: bool = True
    prompted: bool = False
    single_call: bool = True  # a width-1 answer may be generated in one engine call
    # a stage caught in a loop is closed after the loop's first copy (None: never)
    repetition: RepetitionRule | None = field(default_factory=RepetitionRule)
    pipeline: Pipeline = Pipeline.SEARCH
    budget: SearchBudget | None = None  # what the search may generate (budget.py)
    # retrace: candidates kept per stage, the verifier score below which a stage sends the
    # search back, and how many times it may
    keep: int = 2
    retrace_threshold: float = 0.4  # tuned on the validation split (docs/evaluation.md)
    max_retraces: int = 3
    # one of each branching call's candidates (and best-of-N's first chain) is the greedy one
    greedy_candidate: bool = False

    @property
    def summarized(self) -> bool:
        """A summariser call answers after the search (its chain is then all reasoning)."""
        return self.pipeline is Pipeline.REASON_SUMMARIZE

    @property
    def answer_apart(self) -> bool:
        """The answer stage samples otherwise than the stages before it: the caller's stops or
        stop tokens, token logprobs or a structured-output constraint apply to it alone."""
        return bool(self.stop or self.stop_token_ids or self.answer_logprobs is not None
                    or self.constraint is not None)

    def one_call_stages(self) -> tuple[Stage, ...]:
        """The stages a width-1 search generates in one engine call (then splits into stages):
        from the first through the answer stage, or up to it where the answer is apart (it is
        then its own call). None in prompted mode (the model follows an instruction, not its
        training), where the sampling would differ over one call (`min_tokens` and the
        frequency and presence penalties count per call), or with fewer than two stages."""
        sampling = self.sampling
        if (not self.single_call or self.prompted or sampling.min_tokens
                or sampling.frequency_penalty or sampling.presence_penalty):
            return ()
        stages = self.schema.stages
        if self.answer_apart:
            stages = stages[:self.schema.tags.index(self.schema.answer_tag)]
        return stages if len(stages) > 1 else ()

    @property
    def branching(self) -> bool:
        return self.beam_width > 1

    @property
    def wants_logprobs(self) -> bool:
        """Logprobs cost about a quarter of decode time on the CPU: only when a selector reads
        them (logprob itself, and vote and auto, whose votes often tie). The judge's verdicts
        and the verifier's scores decide alone (scores tie only for the same prompt, which is
        asked once: the first such candidate is kept)."""
        return self.branching and self.selector in (Selector.LOGPROB, Selector.VOTE,
                                                    Selector.AUTO)

    def verdicts(self, candidates: int) -> int:
        """The selection calls (one token each) the selector makes at most among `candidates`."""
        if candidates <= 1 or self.selector in (Selector.VOTE, Selector.LOGPROB):
            return 0
        if self.selector is Selector.JUDGE:
            return (candidates - 1) * (2 if self.judge_both_orders else 1)
        return candidates

    def stage_sampling(self, stage: Stage, width: int, cap: int, seed: int | None) -> Sampling:
        """The sampling of one stage's candidates: the request's, capped, stopped at the stage's
        closing tag; for the answer stage also the caller's stops, the structured-output
        constraint (under which a forced length would fight the grammar) and token logprobs."""
        sampling = self.sampling.with_(
            n=width, max_tokens=cap, stop=(stage.close_tag,), logprobs=self.wants_logprobs,
            min_tokens=min(self.sampling.min_tokens, cap), seed=seed)
        if stage.tag != self.schema.answer_tag:
            return sampling
        sampling = sampling.with_(stop=(stage.close_tag, *self.stop),
                                  stop_token_ids=self.stop_token_ids,
                                  token_logprobs=self.answer_logprobs)
        if self.constraint is not None:
            sampling = sampling.with_(constraint=self.constraint, min_tokens=0, ignore_eos=False)
        return sampling

    def repetition_rule(self, stage: Stage) -> RepetitionRule | None:
        """The loop rule of a stage's candidates; none for a structured-output answer, which
        ends where its grammar does (and may well repeat itself: a JSON list)."""
        if stage.tag == self.schema.answer_tag and self.constraint is not None:
            return None
        return self.repetition

    def stage_cap(self, stage: Stage) -> int:
        return self.stage_max_tokens.get(stage.tag, self.default_stage_max_tokens)

    def seed(self, *path: int | str) -> int | None:
        return derive_seed(self.sampling.seed, *path)
