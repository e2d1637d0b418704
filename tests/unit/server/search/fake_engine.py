"""A deterministic FAKE engine for unit tests of pure search logic (never used end to end).

generate(): the model writes, for each stage from the prompt's open tag to the stage whose
closing tag is the call's first stop string, "<stage> candidate i" (candidate i, unless a script
says otherwise) and the closing tag (none under a structured-output constraint), stages apart
by the separator and the next open tag, then EOS; `raw` replaces all of that with its own text
or tokens. As an engine, it decodes that a token at a time (tags, words with their leading
space, runs of space; interned ids), ends at the first stop string (kept), at max_tokens or at
EOS; every token has log-probability -(i+1). A sink gets each output, the last one with its
finish reason. split() and tokens_of() use the same tokens.
choose(): as a judge, prefers the response
whose text contains the word "best", otherwise the first one shown (a maximally position-biased
judge); as a verifier, says "yes" with probability 0.9 to a candidate containing "best" or
"right", 0.2 to any other.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, ClassVar

import pytest

from server.search.interface import (
    ChoiceResult,
    GenerateResult,
    Generation,
    PartialSink,
    PartialSinks,
    Prompt,
    Sampling,
    prompt_text,
)
from server.search.prompts import Conversation
from server.search.schema import SCHEMAS

# a question with an image, as the searches' tests ask it
CONV = Conversation(({"role": "user", "content": [{"type": "image"},
                                                   {"type": "text", "text": "How many?"}]},),
                    ("IMAGE",))
_VERIFY = re.compile(r"<(\w+)>([^<]*)</\1>\n\n\[Verify\] (?:Again: <\w+>[^<]*</\w+>\n)?"
                     r"Is the (\w+) stage above correct\? "
                     r"Reply yes or no: $")
_JUDGE = re.compile(r"^(.*)\n\n\[A second candidate for [^\]]*\]\n(.*)\n\n\[Judge\]", re.DOTALL)
_TOKEN = re.compile(r"</?\w+>|\s*[^\s<]+|\s+|<")
# what the model writes for (first stage, sampling, candidate index): text, or its very tokens
Raw = Callable[[str, Sampling, int], "str | list[str] | None"]


class FakeEngine:
    vocab: ClassVar[dict[str, int]] = {}  # token -> id, the same in every fake
    words: ClassVar[list[str]] = []  # id -> token

    def __init__(self, script: Callable[[str, Sampling, int], str] | None = None,
                 delay: float = 0.0, raw: Raw | None = None) -> None:
        self.script = script
        self.raw = raw
        self.delay = delay
        self.generate_calls: list[tuple[str, Sampling]] = []
        self.choose_calls: list[str] = []
        self.results: list[GenerateResult] = []  # what each generate call returned
        self.in_flight = 0

    async def generate(self, prompt_parts: Prompt, images: Sequence[Any], sampling: Sampling,
                       on_partial: PartialSinks | None = None) -> GenerateResult:
        prompt = prompt_text(prompt_parts)
        self.generate_calls.append((prompt, sampling))
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        stage = prompt.rsplit("<", 1)[-1].rstrip(">")
        generations = []
        for i in range(sampling.n):
            written = self.raw(stage, sampling, i) if self.raw else None
            if written is None:
                written = self.writes(stage, sampling, i)
            tokens = _TOKEN.findall(written) if isinstance(written, str) else written
            sink = on_partial if on_partial is None or callable(on_partial) else on_partial[i]
            generations.append(await self.decode(tokens, sampling, i, sink))
        self.results.append(GenerateResult(generations, prompt_tokens=len(prompt.split()),
                                           cached_tokens=1))
        return self.results[-1]

    def writes(self, stage: str, sampling: Sampling, i: int) -> str:
        last = sampling.stop[0][2:-1] if sampling.stop else stage
        schema = next(s for s in SCHEMAS.values() if stage in s.tags and last in s.tags)
        tags = schema.tags[schema.tags.index(stage):schema.tags.index(last) + 1]
        texts = []
        for tag in tags:
            text = self.script(tag, sampling, i) if self.script else f"{tag} candidate {i}"
            if sampling.constraint is None and f"</{tag}>" not in text:
                text += f"</{tag}>"
            texts.append(text)
        return texts[0] + "".join(f"{schema.separator}<{tag}>{text}"
                                  for tag, text in zip(tags[1:], texts[1:], strict=True))

    async def decode(self, tokens: list[str], sampling: Sampling, i: int,
                     on_partial: PartialSink | None) -> Generation:
        text, kept, finish, eos, shown = "", [], "stop", 1, 0
        for number, token in enumerate(tokens, 1):
            if len(kept) == sampling.max_tokens:
                finish, eos = "length", 0
                break
            kept.append(token)
            text += token
            stops = [text.find(s) + len(s) for s in sampling.stop if s and s in text]
            if stops:
                text, eos = text[:min(stops)], 0  # a stop string may end inside a token
            more = number < len(tokens)
            last = ("stop" if stops or not more else
                    "length" if len(kept) == sampling.max_tokens else "")
            # as vLLM: the first token, then every `partial_every`, the last one with its finish
            due = number == 1 or number - shown >= sampling.partial_every or bool(last)
            if on_partial is not None and due:
                shown = number
                if on_partial(self.generation(text, kept, i, last, 0)) and not last:
                    finish, eos = "abort", 0
                    break
                await asyncio.sleep(0)
            if stops:
                break
        return self.generation(text, kept, i, finish, eos)

    def generation(self, text: str, tokens: list[str], i: int, finish: str, eos: int
                   ) -> Generation:
        count = len(tokens) + eos
        logprobs = (-(i + 1.0),) * count
        return Generation(text, count, sum(logprobs), finish, self.ids(tokens),
                          logprobs=logprobs)

    def ids(self, tokens: list[str]) -> tuple[int, ...]:
        for token in tokens:
            if token not in self.vocab:
                self.vocab[token] = len(self.words)
                self.words.append(token)
        return tuple(self.vocab[t] for t in tokens)

    def split(self, generation: Generation, bounds: Sequence[int]) -> list[Generation] | None:
        ends = [0]
        for token_id in generation.token_ids:
            ends.append(min(ends[-1] + len(self.words[token_id]), len(generation.text)))
        cuts: list[tuple[int, int]] = []
        for bound in bounds:
            low = cuts[-1][0] if cuts else 0
            cut = next((j for j in range(low, len(ends)) if ends[j] >= bound), None)
            if cut is None:
                return None
            cuts.append((cut, ends[cut]))
        return generation.parts(cuts)

    def tokens_of(self, text: str) -> tuple[int, ...]:
        return self.ids(_TOKEN.findall(text))

    async def choose(self, prompt_parts: Prompt, images: Sequence[Any], options: Sequence[str]
                     ) -> ChoiceResult:
        prompt = prompt_text(prompt_parts)
        self.choose_calls.append(prompt)
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        verify = _VERIFY.search(prompt)
        if verify:
            tag, text, asked = verify.groups()
            assert tag == asked, "the verify question names the candidate's own stage"
            p_yes = 0.9 if "best" in text or "right" in text else 0.2
            return ChoiceResult(0 if p_yes > 0.5 else 1, [math.log(p_yes), math.log(1 - p_yes)],
                                prompt_tokens=len(prompt.split()), cached_tokens=1)
        match = _JUDGE.search(prompt)
        assert match, "judge prompt must show both candidates"
        head, second = match.groups()
        first = head.rsplit("<", 2)[-2]  # the first candidate's text, after its opening tag
        picked = 1 if "best" in second and "best" not in first else 0
        return ChoiceResult(picked, [None, None], prompt_tokens=len(prompt.split()),
                            cached_tokens=1)


def render_chat_fake(messages: list[dict[str, Any]], kwargs: Any = None) -> str:
    """FAKE chat template: role: text, images as <image>."""
    lines = []
    for m in messages:
        parts = "".join("<image>" if p["type"] == "image" else p["text"] for p in m["content"])
        lines.append(f"{m['role']}: {parts}")
    return "\n".join(lines) + "\nassistant: "


async def cancel_while_generating(engine: FakeEngine, events: AsyncGenerator[Any, None]
                                  ) -> None:
    """Start consuming a search's `events`, cancel the consumer while the FAKE engine (built
    with a long `delay`) is inside its one call, and check that the call was cancelled with it."""
    task = asyncio.create_task(anext(events))
    await asyncio.sleep(0.05)
    assert engine.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await events.aclose()
    for _ in range(3):
        await asyncio.sleep(0)
    assert engine.in_flight == 0
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not left, left  # nothing of the search still pending (nor destroyed so, later)
