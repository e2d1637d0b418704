"""Does the search pay? Asks a running cot-server the shape questions of `tinycot.task` under
each search configuration, and writes a report of accuracy against compute.

Configurations (--configs; default: all 23):
  greedy                    no search (beam_width 1)
  bon-<selector>-4          best-of-N: 4 whole answers, one picked at the end;
                            selector judge, verify, vote or weighted_vote
  stage-<selector>-<width>  stage-level search: each stage branches into 2, 4 or 8 candidates
                            and the selector keeps one; selector judge, verify, vote,
                            weighted_vote, logprob or auto
--configs takes a comma list of names and glob patterns over that set ('stage-*-4',
'bon-*,greedy', '*verify*'); a plain name may also be any other valid one ('bon-vote-2',
'stage-judge-16'). Selectors (server/search/selection.py): judge = pairwise knockout; verify =
each candidate's P("yes") to a verification question; vote = most common answer / consensus
text (no extra engine call); weighted_vote = answers weighted by P("yes"); logprob = highest
mean token log-probability; auto = nothing when all agree, a vote when over 3/4 agree,
verify otherwise.

Splits (--split): `test` (default) is the held-out split, `tinycot.task.held_out(n, seed)`: the
reported result. `validation` is a separate split, `dataset(seed, n, "validation")`, for tuning
settings; it gets its own report (<out stem>.validation.md), never the result. When the
validation answers file is beside the test one, the test report's targets pick the "best" stage
configuration on it rather than on the test numbers.

Seeds: question i of a split is sent with the same request seed under every configuration
(derived from --seed, the split and i), so configurations are compared question by question
(exact McNemar tests). --seed also seeds the questions themselves.

Resuming: every answer is appended, as it arrives, as one JSON line to
<out stem>.<split>.answers.jsonl (configuration, question, expected and given answer, whether
right, token usage, latency, HTTP status, error, and the trace's marks needed for scoring). Run
the same command again after a stop: (configuration, question) pairs already answered with
status 200 are skipped, failed ones asked again. The report is always computed from the whole
file (every configuration in it, even ones not asked this time); --report-only only rewrites it.
Connection errors and 429/503 are retried (--retries, exponential backoff, Retry-After
honoured); other failures are recorded and counted as wrong.

Outputs (test split): <out> (Markdown), <out stem>.png (accuracy against generated tokens per
question, log scale: a line per selector through widths 2/4/8, best-of-N as open squares, greedy
as a dashed line) and <out stem>.json (the same figures). The report holds the command that
reproduces it; per configuration accuracy with its 95 % Wilson interval, the oracle (questions
where some final candidate was right), generated and prompt tokens per question, the cached
share of prompt tokens, latency and wall time per question, errors; each selector's accuracy on
decisive choices per stage (choices where some but not all usable candidates are right: a
stage candidate is right when its text is the reference stage's, whitespace aside, a CONCLUSION
when its answer is right, a best-of-N chain when its answer is right), the judge's decisive
pairwise comparisons, how `auto` decided; exact paired McNemar tests (each stage configuration
at width 4 against greedy, stage-X-4 against bon-X-4, widths 2/4/8 per selector) with generated
tokens beside each; and the targets, each stated met or missed from the numbers:
  1. the best stage configuration at width 4 beats greedy by >= 10 points with p < 0.01;
  2. it beats bon-X-4 of its selector X (higher, p < 0.05) at <= its generated tokens (the
     best bon-*-4 where X has no best-of-N run, as for logprob and auto);
  3. with its selector, accuracy rises 2 -> 4 -> 8 (each step up, 8 vs 2 p < 0.05);
  4. the verify selector keeps a right candidate in >= 80 % of its decisive choices.
Hand-written notes after the report's notes marker line are kept when it is rewritten.

A full 500-question run of all 23 configurations against `make serve` on two CPU cores takes
roughly 1.5 hours (0.1 to 1 s of wall time per question and configuration at concurrency 16):
    python -m evaluation --base-url http://127.0.0.1:8000 --questions 500 --concurrency 16
and the tuning run on the validation split (its own report, docs/evaluation.validation.md):
    python -m evaluation --split validation --questions 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evaluation.analysis import Results, analyse
from evaluation.configs import BEST_OF_N, DEFAULT_CONFIGS, Config, select
from evaluation.http import backoff, post_with_retries
from evaluation.notes import keep_notes
from evaluation.records import Answer, AnswerLog, done
from evaluation.report import RunInfo, as_json, configs_option, markdown, plot
from evaluation.scoring import trace_facts
from evaluation.targets import targets
from tinycot.onpolicy import wait_ready

SPLITS = {"test": "held-out", "validation": "validation"}  # --split -> tinycot.task's split name
SEED_LIMIT = 2**63


def request_seed(seed: int, split: str, index: int) -> int:
    """Question `index`'s request seed: the same under every configuration."""
    digest = hashlib.blake2b(f"evaluation:{split}:{seed}:{index}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % SEED_LIMIT


def examples_for(split: str, n: int, seed: int) -> list[Any]:
    from tinycot.task import dataset

    return dataset(seed, n, SPLITS[split])


@dataclass(frozen=True)
class Paths:
    report: Path
    plot: Path
    figures: Path
    answers: Path


def paths_for(out: Path, split: str, answers: str | None = None) -> Paths:
    """Where a split's outputs go: the test split's report is `out` itself; the validation
    split's sits beside it as <stem>.validation.md."""
    base = out if split == "test" else out.with_name(f"{out.stem}.{split}{out.suffix or '.md'}")
    return Paths(base, base.with_suffix(".png"), base.with_suffix(".json"),
                 Path(answers) if answers else out.with_name(f"{out.stem}.{split}.answers.jsonl"))


def request_body(model: str, question: str, url: str, config: Config, seed: int
                 ) -> dict[str, Any]:
    return {"model": model, "seed": seed, **config.request_fields(), "return_trace": True,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": question}]}]}


def read_answer(base: Answer, data: dict[str, Any], reference: dict[str, str],
                config: Config) -> Answer:
    """Fill `base` from a 200 response body."""
    from tinycot.task import is_correct

    choice = data["choices"][0]
    message = choice["message"]
    content = message.get("content") or ""
    usage = data.get("usage") or {}
    base.answer = content
    base.correct = is_correct(content, base.expected)
    base.finish_reason = choice.get("finish_reason")
    base.prompt_tokens = usage.get("prompt_tokens")
    base.completion_tokens = usage.get("completion_tokens")
    base.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    details = usage.get("completion_tokens_details") or {}
    base.reasoning_tokens = details.get("reasoning_tokens")
    base.judge_tokens = details.get("judge_tokens")
    base.trace = trace_facts(message.get("stages"), reference,
                             best_of_n=config.search == BEST_OF_N)
    if message.get("retraces") is not None:
        base.retraces = [[r["stage"], round(r["best_score"], 4)] for r in message["retraces"]]
    return base


class Asker:
    """Sends the questions of one run, with retries, and records each answer as it arrives."""

    def __init__(self, client: httpx.AsyncClient, args: argparse.Namespace, log: AnswerLog,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.client = client
        self.args = args
        self.log = log
        self.sleep = sleep
        self.run_id = uuid.uuid4().hex[:12]

    async def ask(self, config: Config, index: int, example: Any, url: str) -> Answer:
        args = self.args
        seed = request_seed(args.seed, args.split, index)
        body = request_body(args.model, example.question, url, config, seed)
        posted = await post_with_retries(self.client, "/v1/chat/completions", body, args.retries,
                                         self.sleep, backoff)
        answer = Answer(config.name, index, example.question, example.conclusion, None, False,
                        posted.status, posted.latency_s, error=posted.error,
                        attempts=posted.attempts, split=args.split, model=args.model, seed=seed,
                        run=self.run_id, concurrency=args.concurrency, started=posted.started,
                        finished=posted.finished)
        if posted.response is not None:
            try:
                read_answer(answer, posted.response.json(), dict(example.stages), config)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                answer.status, answer.answer, answer.correct = 0, None, False
                answer.error = f"unreadable 200 response: {exc!r}"[:300]
        self.log.append(answer)
        return answer

    async def run_config(self, config: Config, pending: list[int], examples: list[Any],
                         urls: list[str], total: int) -> list[Answer]:
        from tqdm import tqdm

        limit = asyncio.Semaphore(self.args.concurrency)

        async def one(i: int) -> Answer:
            async with limit:
                return await self.ask(config, i, examples[i], urls[i])

        answers: list[Answer] = []
        with tqdm(total=total, initial=total - len(pending), desc=f"{config.name:24s}",
                  unit="q", disable=self.args.no_progress, file=sys.stderr) as bar:
            for next_done in asyncio.as_completed([one(i) for i in pending]):
                answer = await next_done
                answers.append(answer)
                bar.update(1)
                bar.set_postfix(right=sum(a.correct for a in answers),
                                errors=sum(not a.ok for a in answers), refresh=False)
        return answers


def check_file(previous: list[Answer], examples: list[Any], args: argparse.Namespace) -> None:
    """Refuse to mix answers to other questions, another model or another seed into a file."""
    for a in previous:
        if a.index >= len(examples):
            problem = a.split != args.split or a.model != args.model
        else:
            e = examples[a.index]
            problem = (a.split != args.split or a.model != args.model
                       or a.question != e.question or a.expected != e.conclusion
                       or a.seed != request_seed(args.seed, args.split, a.index))
        if problem:
            raise SystemExit(
                f"{args.answers_path} holds answers of another run (split {a.split}, model "
                f"{a.model}, question {a.index}: {a.question!r}); use the same --split, --seed "
                "and --model, or another --out / --answers")


async def ask_all(args: argparse.Namespace, log: AnswerLog,
                  transport: httpx.AsyncBaseTransport | None = None) -> None:
    from loadtest.workload import png_data_url

    examples = examples_for(args.split, args.questions, args.seed)
    previous = log.read()
    check_file(previous, examples, args)
    answered = done(previous)
    urls = [png_data_url(e.image) for e in examples]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    pending = {config.name: [i for i in range(len(examples)) if (config.name, i) not in answered]
               for config in args.configs}
    async with httpx.AsyncClient(base_url=args.base_url, timeout=args.timeout, headers=headers,
                                 limits=limits, transport=transport) as client:
        if any(pending.values()):
            # a starting server answers 503 until its engine is up: wait rather than spend
            # every request's retries there
            try:
                await wait_ready(client, args.ready_timeout)
            except TimeoutError as exc:
                raise SystemExit(f"{args.base_url}: {exc}") from None
        asker = Asker(client, args, log)
        for config in args.configs:
            if not pending[config.name]:
                print(f"{config.name}: all {len(examples)} answered already", file=sys.stderr)
                continue
            await asker.run_config(config, pending[config.name], examples, urls, len(examples))


def write_reports(args: argparse.Namespace, paths: Paths) -> Results:
    """Every output of the split, from the whole answers file."""
    results = analyse(AnswerLog(paths.answers).read())
    if not results.configs:
        raise SystemExit(f"no answers in {paths.answers}")
    tuning = None
    if args.split == "test":
        validation = paths_for(Path(args.out), "validation").answers
        if validation.exists() and validation != paths.answers:
            tuning = analyse(AnswerLog(validation).read())
    found = targets(results, tuning)
    info = RunInfo(split=args.split, dataset_split=SPLITS[args.split], seed=args.seed,
                   model=args.model, base_url=args.base_url, concurrency=args.concurrency,
                   out=args.out, answers_file=paths.answers.name,
                   configs=configs_option(results.configs))
    paths.report.parent.mkdir(parents=True, exist_ok=True)
    title = (f"Accuracy against compute, {results.questions} questions of the "
             f"{SPLITS[args.split]} split"
             + (" (tuning only)" if args.split == "validation" else ""))
    plot(results, paths.plot, title)
    paths.report.write_text(markdown(results, found, info, paths.plot.name) + "\n"
                            + keep_notes(paths.report))
    paths.figures.write_text(json.dumps(as_json(results, found, info), indent=1) + "\n")
    print_summary(results)
    for t in found:
        print(f"target {t.verdict:12s} {t.name}")
    print(f"wrote {paths.report}, {paths.plot}, {paths.figures} (answers: {paths.answers})")
    return results


def print_summary(results: Results) -> None:
    for name, s in results.summaries.items():
        print(f"{name:24s} accuracy {s.accuracy:6.1%}  oracle "
              f"{results.selection[name].oracle_share:6.1%}  tokens/q {s.completion_tokens:7.1f}"
              f"  latency {s.latency_s:6.2f}s  wall/q {s.wall_s_per_question:6.2f}s  "
              f"errors {s.errors}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                        help="the server (default: %(default)s)")
    parser.add_argument("--model", default="tiny-cot",
                        help="served model name (default: %(default)s)")
    parser.add_argument("--api-key", default=None, help="sent as a Bearer token")
    parser.add_argument("--split", choices=list(SPLITS), default="test",
                        help="test: the held-out split, the reported result (default); "
                             "validation: a separate split for tuning, reported apart")
    parser.add_argument("--questions", type=int, default=500,
                        help="questions 0..N-1 of the split (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the split's questions and each question's request seed "
                             "(default: %(default)s)")
    parser.add_argument("--configs", default="",
                        help="comma list of configuration names and glob patterns (default: "
                             "all): " + ", ".join(c.name for c in DEFAULT_CONFIGS))
    parser.add_argument("--concurrency", type=int, default=16,
                        help="requests in flight at once (default: %(default)s)")
    parser.add_argument("--ready-timeout", type=float, default=600.0,
                        help="seconds to wait for the server's /ready before asking (default: "
                             "%(default)s)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="per request, seconds: a request with no answer by then is "
                             "recorded as failed, not retried (default: %(default)s; the "
                             "server's own limit is --request-timeout, 600 s by default)")
    parser.add_argument("--retries", type=int, default=4,
                        help="retries of a request after a connection error, 429 or 503, with "
                             "backoff 1, 2, 4, ... s (default: %(default)s)")
    parser.add_argument("--out", default="docs/evaluation.md",
                        help="the test split's report; the plot, the figures and the answers "
                             "files are named after it (default: %(default)s)")
    parser.add_argument("--answers", default=None,
                        help="the answers file (default: <out stem>.<split>.answers.jsonl)")
    parser.add_argument("--report-only", action="store_true",
                        help="ask nothing: rewrite the report from the answers file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        args.configs = select(args.configs)
    except ValueError as exc:
        parser.error(str(exc))
    if args.questions < 1 or args.concurrency < 1 or args.retries < 0 or args.timeout <= 0:
        parser.error("--questions and --concurrency must be at least 1, --retries at least 0 "
                     "and --timeout positive")
    args.answers_path = paths_for(Path(args.out), args.split, args.answers).answers
    return args


def main(argv: list[str] | None = None,
         transport: httpx.AsyncBaseTransport | None = None) -> Results:
    """Ask what is missing, then write the reports; `transport` stands in for the network
    (tests)."""
    args = parse_args(argv)
    paths = paths_for(Path(args.out), args.split, args.answers)
    log = AnswerLog(paths.answers)
    if args.report_only:
        previous = log.read()
        covered = 1 + max((a.index for a in previous), default=-1)
        check_file(previous, examples_for(args.split, covered, args.seed), args)
    else:
        try:
            asyncio.run(ask_all(args, log, transport))
        except KeyboardInterrupt:
            print(f"\ninterrupted: the answers so far are in {paths.answers}; the same command "
                  "carries on", file=sys.stderr)
            raise SystemExit(130) from None
    return write_reports(args, paths)


if __name__ == "__main__":
    main()
