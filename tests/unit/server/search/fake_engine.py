"""A deterministic FAKE engine for unit tests of pure search logic (never used end to end).

generate(): candidate i of a call is "<stage> candidate i" with i+2 tokens and a mean
logprob of -(i+1), unless a script says otherwise. choose(): as a judge, prefers the response
whose text contains the word "best", otherwise the first one shown (a maximally position-biased
judge); as a verifier, says "yes" with probability 0.9 to a candidate containing "best" or
"right", 0.2 to any other.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from server.search.interface import (
    ChoiceResult,
    GenerateResult,
    Generation,
    Prompt,
    Sampling,
    prompt_text,
)

_VERIFY = re.compile(r"<(\w+)>([^<]*)</\1>\n\n\[Verify\] Is the (\w+) stage above correct\? "
                     r"Reply yes or no: $")
_JUDGE = re.compile(r"^(.*)\n\n\[A second candidate for [^\]]*\]\n(.*)\n\n\[Judge\]", re.DOTALL)


class FakeEngine:
    def __init__(self, script: Callable[[str, Sampling, int], str] | None = None,
                 delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.generate_calls: list[tuple[str, Sampling]] = []
        self.choose_calls: list[str] = []
        self.in_flight = 0

    async def generate(self, prompt_parts: Prompt, images: Sequence[Any], sampling: Sampling,
                       on_text: Callable[[str], None] | None = None) -> GenerateResult:
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
            text = self.script(stage, sampling, i) if self.script else f"{stage} candidate {i}"
            if on_text is not None:  # as decoded: a word at a time
                words = text.split(" ")
                for end in range(1, len(words) + 1):
                    on_text(" ".join(words[:end]))
                    await asyncio.sleep(0)
            tokens = min(len(text.split()) + 1, sampling.max_tokens) if text else 0
            finish = "length" if tokens >= sampling.max_tokens else "stop"
            generations.append(Generation(text, tokens, -(i + 1.0) * max(tokens, 1), finish))
        return GenerateResult(generations, prompt_tokens=len(prompt.split()), cached_tokens=1)

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
