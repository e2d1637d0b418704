"""What a search produced: candidates, judge comparisons, chosen stages, token usage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from server.search.interface import Generation, PromptPart, TokenLogprob
from server.search.schema import CleanStage, Stage, StageSchema


@dataclass(frozen=True)
class Candidate:
    text: str  # the stage's text, without tags or surrounding space
    token_count: int
    mean_logprob: float
    closed: bool  # the model wrote the closing tag itself
    generation: Generation | None = field(default=None, repr=False, compare=False)
    cleaned: tuple[str, ...] = ()  # what stage text hygiene did (CleanStage.cleaned)

    @classmethod
    def of(cls, generation: Generation, clean: CleanStage,
           split: Callable[[Generation, Sequence[int]], list[Generation] | None]
           ) -> Candidate:
        """The candidate a generated stage makes, cleaned (`clean_stage`). Where hygiene cut
        its text short, its generation is cut there too (with the engine's `split`), so that
        what follows it in a prompt is the text returned, in the model's own tokens (where a
        token runs past the cut, the text instead), and the stage is closed by the server; its
        token count stays what was generated for it (as for a stage cut at its closing tag:
        every token the engine made is counted, in the usage and in the trace)."""
        if not clean.cut:
            return cls(clean.text, generation.token_count, generation.mean_logprob,
                       clean.closed, generation, clean.cleaned)
        parts = split(generation, [clean.end])
        if parts is None:
            return cls(clean.text, generation.token_count, generation.mean_logprob, False,
                       None, clean.cleaned)
        kept = parts[0]
        own = generation.token_logprobs
        mean = kept.mean_logprob if kept.cumulative_logprob is not None else (
            generation.mean_logprob)
        exact = kept.text == generation.text[:clean.end]
        kept = replace(kept, token_logprobs=None if own is None else own[:len(kept.token_ids)])
        return cls(clean.text, generation.token_count, mean, False, kept if exact else None,
                   clean.cleaned)

    @property
    def usable(self) -> bool:
        return bool(self.text)

    def token_logprobs(self, ends: Sequence[str]) -> tuple[TokenLogprob, ...] | None:
        """The logprobs of the tokens that make up this candidate's text: those the engine
        reported, up to the first of `ends` (its closing tag, a stop string) in what it wrote."""
        generation = self.generation
        if generation is None or generation.token_logprobs is None:
            return None
        found = [i for i in (generation.text.find(e) for e in ends if e) if i >= 0]
        end = min(found, default=len(generation.text))
        kept: list[TokenLogprob] = []
        offset = 0
        for token in generation.token_logprobs:
            if offset >= end:
                break
            kept.append(token)
            offset += len(token.token)
        return tuple(kept)

    def as_prompt(self, close_tag: str) -> tuple[PromptPart, ...]:
        """The candidate as the model wrote it, closed: its exact tokens where known."""
        if self.generation is None:
            return (f"{self.text}{close_tag}",)
        return (self.generation,) if self.closed else (self.generation, close_tag)


@dataclass(frozen=True)
class Comparison:
    round: int
    first: int
    second: int
    winner: int
    confidence: float | None  # probability the judge gave the winner, where known


@dataclass(frozen=True)
class Selection:
    """How one candidate was picked: by which method, after which comparisons, with which
    per-candidate scores (verifier P("yes"), where one was asked)."""

    winner: int
    method: str  # the selector that decided, or "only" (one usable candidate), "agree" (all same)
    comparisons: tuple[Comparison, ...] = ()
    scores: tuple[float | None, ...] = ()

    @property
    def judged(self) -> int:
        """The comparisons the judge was asked (not those between the same text)."""
        return sum(c.confidence is not None for c in self.comparisons)


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    candidates: tuple[Candidate, ...]
    selection: Selection
    fallback: bool = False  # every sampled candidate failed; a greedy one was used
    # retrace: each candidate's parent (the previous stage's candidate it continues) and the
    # pass over the stage that sampled it (0 first, one more after each retrace to it)
    parents: tuple[int | None, ...] = ()
    attempts: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def tag(self) -> str:
        return self.stage.tag

    @property
    def chosen_index(self) -> int:
        return self.selection.winner

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        return self.selection.comparisons

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.chosen_index]

    @property
    def text(self) -> str:
        return self.chosen.text


@dataclass(frozen=True)
class Retraced:
    """A retracing search went back: the best verifier score of `stage`'s candidates was
    `best`, below the threshold, so `back_to` (the stage before) was sampled again."""

    stage: str
    best: float
    back_to: str


@dataclass
class Usage:
    """Token counts of one request, summed over every engine call it made. `judge_*` counts
    every selection call (judge comparisons and verifications: one constrained token each),
    `summary_*` the summariser's call (reason_summarize pipeline)."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    candidate_tokens: int = 0
    judge_tokens: int = 0
    candidate_prompt_tokens: int = 0
    judge_prompt_tokens: int = 0
    judge_cached_tokens: int = 0
    candidate_cached_tokens: int = 0
    summary_tokens: int = 0
    summary_prompt_tokens: int = 0
    summary_cached_tokens: int = 0

    @property
    def completion_tokens(self) -> int:
        return self.candidate_tokens + self.judge_tokens + self.summary_tokens

    def add_generation(self, prompt_tokens: int, cached: int, generated: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.cached_tokens += cached
        self.candidate_prompt_tokens += prompt_tokens
        self.candidate_cached_tokens += cached
        self.candidate_tokens += generated

    def add_judge(self, prompt_tokens: int, cached: int, generated: int = 1) -> None:
        self.prompt_tokens += prompt_tokens
        self.cached_tokens += cached
        self.judge_prompt_tokens += prompt_tokens
        self.judge_cached_tokens += cached
        self.judge_tokens += generated

    def add_summary(self, prompt_tokens: int, cached: int, generated: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.cached_tokens += cached
        self.summary_prompt_tokens += prompt_tokens
        self.summary_cached_tokens += cached
        self.summary_tokens += generated

    def merge(self, other: Usage) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Trace:
    schema: StageSchema
    stages: list[StageResult] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    # the summariser's answer (reason_summarize pipeline): then the answer, and every stage of
    # the search (its answer stage too) is reasoning
    summary: StageResult | None = None
    retraces: list[Retraced] = field(default_factory=list)  # retrace shape: each time it went back

    @property
    def answer(self) -> str:
        stage = self.answer_stage
        return stage.text if stage is not None else ""

    @property
    def answer_stage(self) -> StageResult | None:
        if self.summary is not None:
            return self.summary
        return self.reasoner_answer

    @property
    def reasoner_answer(self) -> StageResult | None:
        """The search's own answer stage."""
        return next((s for s in self.stages if s.tag == self.schema.answer_tag), None)

    @property
    def summary_agreed(self) -> bool:
        """The summariser gave the search's own answer (compared without case or outer space)."""
        own = self.reasoner_answer
        return (self.summary is not None and own is not None
                and self.summary.text.strip().casefold() == own.text.strip().casefold())

    @property
    def answer_tokens(self) -> int:
        stage = self.answer_stage
        return stage.chosen.token_count if stage is not None else 0

    @property
    def path_tokens(self) -> int:
        return sum(s.chosen.token_count for s in self.stages)

    def tagged_text(self) -> str:
        return self.schema.tagged_text([(s.tag, s.text) for s in self.stages])
