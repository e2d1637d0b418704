"""The narrow engine interface the search runs on. The vLLM adapter implements it; unit tests
use a deterministic fake."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

ConstraintKind = Literal["json", "json_object", "regex", "choice", "grammar"]


@dataclass(frozen=True)
class Constraint:
    """What the answer stage must match, enforced while decoding by the engine's structured-
    output backend: a JSON schema (as JSON text), any JSON object, a regular expression, one of
    a few strings, or a grammar (EBNF)."""

    kind: ConstraintKind
    value: str | tuple[str, ...] | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one engine call (n completions of one prompt)."""

    n: int = 1
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    min_tokens: int = 0  # neither EOS nor a stop string ends a completion before this many
    ignore_eos: bool = False  # EOS does not end a completion (stop strings and caps still do)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias added to its logit)
    stop_token_ids: tuple[int, ...] = ()
    skip_special_tokens: bool = True
    token_logprobs: int | None = None  # report each token's logprob and this many alternatives
    constraint: Constraint | None = None  # structured output the completion must match
    # a partial sink sees the completion after its first token, then every this many tokens,
    # and at its end
    partial_every: int = 1

    def with_(self, **changes: Any) -> Sampling:
        return replace(self, **changes)


@dataclass(frozen=True)
class Generation:
    """One completion. `text` includes the stop string that ended it, if any; `token_ids` are
    the engine's own tokens for `text` (opaque to the search), so a later prompt that contains
    this generation reuses its exact tokens, and with them the engine's prefix cache."""

    text: str
    token_count: int
    cumulative_logprob: float | None
    # "stop" (stop string / EOS), "length", "abort" (the caller ended it early: see
    # PartialSink), "" (still being decoded)
    finish_reason: str
    token_ids: tuple[int, ...] = field(default=(), repr=False, compare=False)
    token_logprobs: tuple[TokenLogprob, ...] | None = field(default=None, repr=False,
                                                            compare=False)
    # each generated token's log-probability (EOS included), where the engine reported them:
    # a part of this generation gets its own share of `cumulative_logprob`
    logprobs: tuple[float, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def mean_logprob(self) -> float:
        if self.cumulative_logprob is None or self.token_count == 0:
            return float("-inf")
        return self.cumulative_logprob / self.token_count

    def parts(self, cuts: Sequence[tuple[int, int]]) -> list[Generation]:
        """This generation cut at (token index, text offset) points, ascending, into
        len(cuts) + 1 consecutive parts, each with its own tokens, text, token count and share
        of the log-probability; the last part also takes the tokens `token_ids` leaves out at
        the end (EOS) and the finish reason."""
        points = [(0, 0), *cuts, (len(self.token_ids), len(self.text))]
        parts = []
        for number, ((start, begin), (stop, end)) in enumerate(itertools.pairwise(points)):
            last = number == len(points) - 2
            counted = stop + (self.token_count - len(self.token_ids) if last else 0)
            logprobs = None if self.logprobs is None else self.logprobs[start:counted]
            parts.append(Generation(
                self.text[begin:end], counted - start,
                None if logprobs is None else sum(logprobs),
                self.finish_reason if last else "stop", self.token_ids[start:stop],
                logprobs=logprobs))
        return parts


@dataclass(frozen=True)
class GenerateResult:
    generations: list[Generation]
    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class ChoiceResult:
    """A constrained one-token answer: which option the model picked, greedy, and the
    log-probability of each option where the engine reported it (None otherwise)."""

    picked: int
    logprobs: list[float | None]
    prompt_tokens: int
    cached_tokens: int


# A prompt is a sequence of parts: text to tokenize, or an earlier generation whose tokens are
# reused as they are.
PromptPart = str | Generation
Prompt = tuple[PromptPart, ...]


def prompt_text(prompt: Prompt) -> str:
    return "".join(p if isinstance(p, str) else p.text for p in prompt)


class PromptTooLong(ValueError):
    """The prompt does not fit the model's context."""


class InvalidRequest(ValueError):
    """The engine refused a request's parameters (a structured-output schema it cannot compile,
    a logit bias for a token outside the vocabulary, ...): the caller's mistake, not a fault."""


class EngineDead(RuntimeError):
    """The engine stopped working; the process should exit and be restarted."""


# Called with a completion so far (text, tokens; finish_reason "" until its last output), each
# time the engine has more of it; a true result ends that completion there (the engine aborts
# it and returns what it has, finish_reason "abort").
PartialSink = Callable[[Generation], bool | None]
# A call's sinks: one sink for a call of one completion; a sequence of one per completion for
# any call (the engine then runs each completion of n > 1 as a request of its own, so that
# each can be ended alone).
PartialSinks = PartialSink | Sequence[PartialSink]


def sinks_of(on_partial: PartialSinks | None, n: int) -> list[PartialSink | None]:
    """Each completion's sink: a lone sink is for a call of one completion only."""
    if on_partial is None:
        return [None] * n
    if callable(on_partial):
        return [on_partial if n == 1 else None] + [None] * (n - 1)
    if len(on_partial) != n:
        raise ValueError(f"{len(on_partial)} sinks for {n} completions")
    return list(on_partial)


class StageEngine(Protocol):
    async def generate(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling,
                       on_partial: PartialSinks | None = None) -> GenerateResult: ...

    async def choose(self, prompt: Prompt, images: Sequence[Any], options: Sequence[str]
                     ) -> ChoiceResult: ...

    def split(self, generation: Generation, bounds: Sequence[int]) -> list[Generation] | None:
        """`generation` cut at the text offsets `bounds` (ascending) into len(bounds) + 1
        consecutive parts, each with its own text, tokens, token count and share of the
        log-probability (the last one also its trailing EOS). A bound inside a token moves to
        that token's end, as a stop string ends a generation: the part before it then runs past
        the bound (compare text lengths to tell). None where the engine cannot match its tokens
        to the text."""
        ...

    def tokens_of(self, text: str) -> tuple[int, ...]:
        """The tokens a prompt's text part `text` becomes (to compare with a generation's own:
        the ids stay opaque)."""
        ...
