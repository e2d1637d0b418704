"""The narrow engine interface the search runs on. The vLLM adapter implements it; unit tests
use a deterministic fake."""

from __future__ import annotations

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
    finish_reason: str  # "stop" (stop string / EOS) or "length"
    token_ids: tuple[int, ...] = field(default=(), repr=False, compare=False)
    token_logprobs: tuple[TokenLogprob, ...] | None = field(default=None, repr=False,
                                                            compare=False)

    @property
    def mean_logprob(self) -> float:
        if self.cumulative_logprob is None or self.token_count == 0:
            return float("-inf")
        return self.cumulative_logprob / self.token_count


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


# Called with a one-completion call's whole text so far, each time the engine has more of it.
TextSink = Callable[[str], None]


class StageEngine(Protocol):
    async def generate(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling,
                       on_text: TextSink | None = None) -> GenerateResult: ...

    async def choose(self, prompt: Prompt, images: Sequence[Any], options: Sequence[str]
                     ) -> ChoiceResult: ...
