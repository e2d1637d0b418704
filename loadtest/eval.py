"""Accuracy versus compute: the held-out shape questions through a running cot-server.

    python -m loadtest.eval --base-url http://127.0.0.1:8000 --model tiny-cot \\
        --questions 500 --out docs/evaluation.md [--limit-configs greedy,judge-4]

Every search configuration answers the same held-out questions (`server.shapes_data`) over
HTTP with bounded concurrency. A question is right when the CONCLUSION (`message.content`)
matches the expected answer after normalisation. Reported per configuration: accuracy (with a
95 % Wilson interval), generated tokens per question (`usage.completion_tokens`: every candidate
and judge verdict), latency per question and wall time per question at that concurrency.
Writes a Markdown table (`--out`), a plot of accuracy against generated tokens (same name,
.png) and every answer as JSON (same name, .json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from loadtest.eval_judge import SelectionReport, add_answer
from loadtest.eval_report import findings, keep_notes, markdown, plot
from loadtest.workload import png_data_url

# name -> request fields beyond the question (beam_width 1 is plain greedy staged generation)
CONFIGS: dict[str, dict[str, Any]] = {
    "greedy": {"beam_width": 1},
    "best_of_n-4": {"beam_width": 4, "selector": "best_of_n"},
    "judge-2": {"beam_width": 2, "selector": "judge"},
    "judge-4": {"beam_width": 4, "selector": "judge"},
    "judge-8": {"beam_width": 8, "selector": "judge"},
    "logprob-4": {"beam_width": 4, "selector": "logprob"},
    "auto-4": {"beam_width": 4, "selector": "auto"},
}


@dataclass
class Answer:
    config: str
    index: int
    question: str
    expected: str
    answer: str | None
    correct: bool
    completion_tokens: int | None
    latency_s: float
    status: int
    error: str | None = None


@dataclass
class Summary:
    config: str
    questions: int
    accuracy: float
    ci_low: float
    ci_high: float
    tokens_per_question: float
    latency_s: float  # mean per request
    wall_s_per_question: float  # the configuration's elapsed time / questions
    errors: int


def request_body(model: str, question: str, url: str, extra: dict[str, Any], seed: int
                 ) -> dict[str, Any]:
    return {"model": model, "seed": seed, **extra, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}]}]}


async def ask(client: httpx.AsyncClient, limit: asyncio.Semaphore, config: str, index: int,
              example: Any, url: str, model: str, seed: int, report: SelectionReport) -> Answer:
    from server.shapes_data import is_correct

    extra = {**CONFIGS[config], "return_trace": True}
    body = request_body(model, example.question, url, extra, seed + index)
    async with limit:
        started = time.monotonic()
        try:
            response = await client.post("/v1/chat/completions", json=body)
            latency = time.monotonic() - started
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Answer(config, index, example.question, example.conclusion, None, False,
                          None, time.monotonic() - started, 0, repr(exc)[:300])
    if response.status_code != 200:
        return Answer(config, index, example.question, example.conclusion, None, False, None,
                      latency, response.status_code, json.dumps(data)[:300])
    message = data["choices"][0]["message"]
    content = message.get("content") or ""
    tokens = (data.get("usage") or {}).get("completion_tokens")
    add_answer(report, message.get("stages"), dict(example.stages),
               whole_chains=CONFIGS[config].get("selector") == "best_of_n")
    return Answer(config, index, example.question, example.conclusion, content,
                  is_correct(content, example.conclusion), tokens, latency, 200)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(config: str, answers: list[Answer], elapsed: float) -> Summary:
    n = len(answers)
    right = sum(a.correct for a in answers)
    low, high = wilson(right, n)
    tokens = [a.completion_tokens for a in answers if a.completion_tokens is not None]
    return Summary(config, n, right / n if n else 0.0, low, high,
                   statistics.fmean(tokens) if tokens else 0.0,
                   statistics.fmean(a.latency_s for a in answers) if answers else 0.0,
                   elapsed / n if n else 0.0, sum(a.status != 200 for a in answers))


async def run_config(client: httpx.AsyncClient, config: str, examples: list[Any],
                     urls: list[str], args: argparse.Namespace
                     ) -> tuple[Summary, list[Answer], SelectionReport]:
    limit = asyncio.Semaphore(args.concurrency)
    report = SelectionReport(config)
    started = time.monotonic()
    answers = await asyncio.gather(*(
        ask(client, limit, config, i, e, u, args.model, args.seed, report)
        for i, (e, u) in enumerate(zip(examples, urls, strict=True))))
    summary = summarise(config, list(answers), time.monotonic() - started)
    print(f"{config:12s} accuracy {summary.accuracy:6.1%}  tokens/q "
          f"{summary.tokens_per_question:7.1f}  latency {summary.latency_s:6.2f}s  "
          f"wall/q {summary.wall_s_per_question:6.2f}s  errors {summary.errors}", flush=True)
    return summary, list(answers), report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="tiny-cot", help="served model name")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--out", default="docs/evaluation.md")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0,
                        help="held-out split seed; request i is sent with seed + i")
    parser.add_argument("--limit-configs", default="",
                        help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    parser.add_argument("--api-key", default=None, help="sent as a Bearer token")
    parser.add_argument("--timeout", type=float, default=900.0, help="per request, seconds")
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.limit_configs.split(",") if c.strip()] or list(CONFIGS)
    unknown = sorted(set(chosen) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    args.configs = chosen
    return args


async def evaluate(args: argparse.Namespace) -> list[Summary]:
    from server.shapes_data import held_out

    examples = held_out(args.questions, args.seed)
    urls = [png_data_url(e.image) for e in examples]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    summaries: list[Summary] = []
    answers: list[Answer] = []
    reports: list[SelectionReport] = []
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=args.timeout, headers=headers,
                                 limits=limits) as client:
        for config in args.configs:
            summary, config_answers, report = await run_config(client, config, examples, urls,
                                                               args)
            summaries.append(summary)
            reports.append(report)
            answers += config_answers
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png, raw = out.with_suffix(".png"), out.with_suffix(".json")
    plot(summaries, png)
    out.write_text(markdown(summaries, args, png.name) + findings(summaries, reports, answers)
                   + "\n" + keep_notes(out))
    raw.write_text(json.dumps({"model": args.model, "seed": args.seed,
                               "concurrency": args.concurrency,
                               "configs": {c: CONFIGS[c] for c in args.configs},
                               "summaries": [asdict(s) for s in summaries],
                               "answers": [asdict(a) for a in answers]}, indent=1))
    print(f"wrote {out}, {png}, {raw}")
    return summaries


def main(argv: list[str] | None = None) -> None:
    asyncio.run(evaluate(parse_args(argv)))


if __name__ == "__main__":
    main()
