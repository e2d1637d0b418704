"""FAKE: a stand-in for the cot-server's chat completions endpoint (an httpx transport handler),
answering the shape questions with traces shaped like the server's (`message.stages`), so the
evaluation's run loop, retries, resuming and reports can be tested without a server."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx

from server.search.selection import CLEAR_MAJORITY

TAGS = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")


class FakeServer:
    """Candidates are right with probability `p_right`; the selector keeps a right one (where
    there is one) with probability `p_pick`. `failures[question index]` lists statuses (0: a
    dropped connection) returned before the real answer, one per attempt."""

    def __init__(self, examples: list[Any], p_right: float = 0.6, p_pick: float = 0.8,
                 failures: dict[int, list[int]] | None = None) -> None:
        from loadtest.workload import png_data_url

        # questions repeat across scenes; the image names the example
        self.index = {png_data_url(e.image): i for i, e in enumerate(examples)}
        self.examples = examples
        self.p_right = p_right
        self.p_pick = p_pick
        self.failures = {k: list(v) for k, v in (failures or {}).items()}
        self.bodies: list[dict[str, Any]] = []
        self.not_ready_for = 0  # /ready polls answered 503 before the first 200
        self.ready_polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ready":
            self.ready_polls += 1
            return httpx.Response(503 if self.ready_polls <= self.not_ready_for else 200)
        body = json.loads(request.content)
        self.bodies.append(body)
        index = self.index[body["messages"][0]["content"][0]["image_url"]["url"]]
        pending = self.failures.get(index)
        if pending:
            status = pending.pop(0)
            if status == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(status, headers={"Retry-After": "0"},
                                  json={"error": {"message": f"fake {status}"}})
        return httpx.Response(200, json=self.completion(body, self.examples[index]))

    def completion(self, body: dict[str, Any], example: Any) -> dict[str, Any]:
        width = body["beam_width"]
        selector = body.get("selector", "only")
        rng = random.Random(f"{body['seed']}:{selector}:{body.get('search')}:{width}")
        reference = dict(example.stages)

        def sample(tag: str) -> str:
            if rng.random() < self.p_right:
                return reference[tag]
            return "7" if tag == "CONCLUSION" and reference[tag] != "7" else f"wrong {tag}"

        def pick(texts: list[str], tag: str) -> int:
            right = [i for i, t in enumerate(texts) if t == reference[tag]]
            if right and rng.random() < self.p_pick:
                return right[0]
            return rng.randrange(len(texts))

        def stage(tag: str, texts: list[str], chosen: int, by: str) -> dict[str, Any]:
            comparisons = ([{"round": 1, "first": 0, "second": 1, "winner": chosen if chosen < 2
                             else 0, "confidence": 0.7}] if by == "judge" else [])
            return {"name": tag.lower(), "tag": tag, "text": texts[chosen],
                    "chosen_index": chosen, "selected_by": by, "comparisons": comparisons,
                    "fallback": False, "candidates": [
                        {"text": t, "tokens": 5, "mean_logprob": -0.5, "closed": True,
                         "score": None} for t in texts]}

        stages = []
        if width == 1:
            stages = [stage(tag, [sample(tag)], 0, "only") for tag in TAGS]
        elif body.get("search") == "best_of_n":
            chains = [[sample(tag) for tag in TAGS] for _ in range(width)]
            chosen = pick([c[-1] for c in chains], "CONCLUSION")
            stages = [stage(tag, [c[k] for c in chains], chosen, selector)
                      for k, tag in enumerate(TAGS)]
        else:
            for tag in TAGS:
                texts = [sample(tag) for _ in range(width)]
                by = selector
                if selector == "auto":  # as the server's: agree, a clear majority, or verify
                    top = max(texts.count(t) for t in texts)
                    by = ("agree" if top == width else
                          "vote" if top > width * CLEAR_MAJORITY else "verify")
                stages.append(stage(tag, texts, pick(texts, tag), by))
        completion = 20 * width + (3 * width if selector in ("judge", "verify") else 0)
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": stages[-1]["text"], "stages": stages}}],
            "usage": {"prompt_tokens": 100 * width, "completion_tokens": completion,
                      "total_tokens": 100 * width + completion,
                      "prompt_tokens_details": {"cached_tokens": 40 * width},
                      "completion_tokens_details": {"reasoning_tokens": completion - 1,
                                                    "judge_tokens": 0}}}


def answer(config: str, index: int, correct: bool, *, status: int = 200, tokens: int = 10,
           trace: list[dict[str, Any]] | None = None, run: str = "r", started: float = 0.0,
           finished: float = 1.0) -> Any:
    """A hand-written answers-file record."""
    from evaluation.records import Answer

    return Answer(config, index, f"question {index}", "2", ("2" if correct else "3")
                  if status == 200 else None, correct and status == 200, status, 0.5,
                  prompt_tokens=100, completion_tokens=tokens if status == 200 else None,
                  cached_tokens=25, judge_tokens=0, run=run, started=started,
                  finished=finished, concurrency=4, trace=trace)


def answers(config: str, right: set[int] | range, n: int = 100, tokens: int = 10) -> list[Any]:
    """`n` answers of `config`, right on the questions in `right`."""
    return [answer(config, i, i in right, tokens=tokens) for i in range(n)]
