"""Evaluate one or two OpenAI-compatible endpoints on your own data, side by side.

    python -m evaluation.compare --dataset questions.jsonl \\
        --a http://127.0.0.1:8000 --a-name search-4 --a-fields '{"beam_width": 4}' \\
        --b http://127.0.0.1:8001 --b-name base --out comparison/

Each question of the dataset (a JSONL file, a VLMEvalKit-style TSV, or `shapes:test:500`; see
`evaluation/compare/datasets.py` or --help-dataset) is sent with its image to each system's
/v1/chat/completions (any OpenAI-compatible server: cot-server with a search configuration in
--a-fields, upstream `vllm serve`, a hosted API). The answer is scored (--scorer) and kept, as it
arrives, in <out>/predictions.jsonl: the input, the full content, the scored text, the reasoning,
the stage trace where the server returns one, the verdict, tokens, latency and errors. When the
content holds tagged stages, the --answer-tag stage (CONCLUSION) is what is scored.

The report, <out>/report.html, shows each system's accuracy with its 95 % interval, tokens and
latency; for two systems the paired outcomes and the exact McNemar test; and every question's
row with both answers and their reasoning, with filters (only A right, only B right, ...).
<out>/summary.json holds the same figures.

Resuming: run the same command again; questions already answered and scored are skipped,
failed ones asked again. Connection errors, 429 and 503 are retried with backoff (--retries).
The file refuses answers of other settings (another endpoint, model or request fields under the
same system name): use another --out or another name.

Each question is sent with the same seed to both systems (from --seed and the question's id),
so sampled systems are reproducible where the server honours seeds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from evaluation.compare import datasets, html, markdown
from evaluation.compare.datasets import DatasetError, Item
from evaluation.compare.predictions import (
    Prediction,
    PredictionLog,
    System,
    identity,
    read_response,
)
from evaluation.compare.scorers import (
    SCORERS,
    Verdict,
    judge_request,
    judge_verdict,
    resolve,
    score,
)
from evaluation.compare.summary import Comparison, compare
from evaluation.http import backoff, post_with_retries
from evaluation.notes import keep_notes

CHAT = "/v1/chat/completions"
SEED_LIMIT = 2**63


def item_seed(seed: int, item_id: str) -> int:
    digest = hashlib.blake2b(f"compare:{seed}:{item_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % SEED_LIMIT


def request_body(system: System, item: Item, seed: int | None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if item.image:
        content.append({"type": "image_url", "image_url": {"url": item.image}})
    content.append({"type": "text", "text": item.prompt})
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if system.system_prompt:
        messages.insert(0, {"role": "system", "content": system.system_prompt})
    body: dict[str, Any] = {"model": system.model}
    if seed is not None:
        body["seed"] = seed
    if system.prefill:
        messages.append({"role": "assistant", "content": system.prefill})
        body.update(continue_final_message=True, add_generation_prompt=False)
    return {**body, **system.fields, "messages": messages}


def client_for(base_url: str, api_key: str | None, args: argparse.Namespace,
               transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    return httpx.AsyncClient(base_url=base_url, timeout=args.timeout, headers=headers,
                             limits=limits, transport=transport)


class Judge:
    """The LLM judge: one request per answer to another OpenAI-compatible endpoint."""

    def __init__(self, client: httpx.AsyncClient, model: str, fields: dict[str, Any],
                 retries: int) -> None:
        self.client, self.model, self.fields, self.retries = client, model, fields, retries

    async def verdict(self, item: Item, answer: str) -> tuple[Verdict, str | None]:
        body = judge_request(self.model, item, answer, self.fields)
        posted = await post_with_retries(self.client, CHAT, body, self.retries, asyncio.sleep,
                                         backoff)
        if posted.response is None:
            return Verdict(None), f"judge: HTTP {posted.status}: {posted.error}"
        try:
            reply = posted.response.json()["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Verdict(None), f"judge: unreadable response: {exc!r}"
        found = judge_verdict(reply)
        return found, None if found.correct is not None else "judge: no yes or no"


class Runner:
    """Asks every pending (system, question), scores and records each answer as it arrives."""

    def __init__(self, args: argparse.Namespace, log: PredictionLog,
                 clients: dict[str, httpx.AsyncClient], judge: Judge | None) -> None:
        self.args, self.log, self.clients, self.judge = args, log, clients, judge

    async def ask(self, system: System, index: int, item: Item) -> Prediction:
        args = self.args
        seed = None if args.no_seed else item_seed(args.seed, item.id)
        body = request_body(system, item, seed)
        posted = await post_with_retries(self.clients[system.name], CHAT, body, args.retries,
                                         asyncio.sleep, backoff)
        kind = resolve(args.scorer, item)
        p = Prediction(system.name, item.id, index, item.prompt, item.image_ref, item.answer,
                       kind, posted.status, latency_s=posted.latency_s,
                       attempts=posted.attempts, error=posted.error, started=posted.started,
                       finished=posted.finished, settings=system.settings, slot=system.slot)
        if posted.response is not None:
            try:
                read_response(p, posted.response.json(), args.answer_tag or None)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                p.status, p.error = 0, f"unreadable 200 response: {exc!r}"[:300]
        if p.ok:
            await self.score(p, item, kind)
        self.log.append(p)
        return p

    async def score(self, p: Prediction, item: Item, kind: str) -> None:
        answer = p.scored or ""
        if kind == "judge":
            assert self.judge is not None
            found, problem = await self.judge.verdict(item, answer)
            p.error = problem
        else:
            found = score(kind, answer, item, self.args.tolerance)
        p.correct, p.read = found.correct, found.read

    async def run(self, work: list[tuple[System, int, Item]]) -> None:
        from tqdm import tqdm

        limit = asyncio.Semaphore(self.args.concurrency)

        async def one(system: System, index: int, item: Item) -> Prediction:
            async with limit:
                return await self.ask(system, index, item)

        right: dict[str, int] = {}
        with tqdm(total=len(work), unit="answer", desc="asking", file=sys.stderr,
                  disable=self.args.no_progress) as bar:
            for next_done in asyncio.as_completed([one(*w) for w in work]):
                p = await next_done
                right[p.system] = right.get(p.system, 0) + p.right
                bar.update(1)
                bar.set_postfix(right, refresh=False)


def check_file(previous: list[Prediction], items: list[Item], systems: list[System],
               path: Path) -> None:
    """Refuse to mix predictions of other settings or other questions into the file."""
    by_id = {i.id: i for i in items}
    settings = {s.name: identity(s.settings) for s in systems}
    for p in previous:
        item = by_id.get(p.id)
        if p.system in settings and identity(p.settings) != settings[p.system]:
            raise SystemExit(
                f"{path} holds answers of system {p.system!r} with other settings "
                f"({json.dumps(p.settings)}); use the same settings, another --out, or another "
                "system name")
        if item is not None and (p.prompt != item.prompt or p.expected != item.answer):
            raise SystemExit(f"{path} holds another question under the id {p.id!r}: use the "
                             "same dataset or another --out")


def systems_in_file(previous: list[Prediction]) -> list[System]:
    seen: dict[str, System] = {}
    for p in previous:
        if p.system not in seen:
            s = p.settings
            seen[p.system] = System(p.system, p.slot, s.get("base_url", ""),
                                    s.get("model", ""), s.get("fields") or {},
                                    system_prompt=s.get("system_prompt"),
                                    prefill=s.get("prefill"))
    return sorted(seen.values(), key=lambda s: s.slot)


async def served_model(base_url: str, api_key: str | None,
                       transport: httpx.AsyncBaseTransport | None) -> str:
    """The first model the endpoint lists (for a system given without --x-model)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30,
                                 transport=transport) as client:
        try:
            reply = await client.get("/v1/models")
            reply.raise_for_status()
            return str(reply.json()["data"][0]["id"])
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            raise SystemExit(f"{base_url}/v1/models did not name a model ({exc}); give the "
                             "model with --a-model / --b-model") from None


async def ask_all(args: argparse.Namespace, items: list[Item], systems: list[System],
                  log: PredictionLog, transport: httpx.AsyncBaseTransport | None) -> None:
    previous = log.read()
    check_file(previous, items, systems, log.path)
    done = {p.key for p in previous if p.done}
    work = [(s, i, item) for i, item in enumerate(items) for s in systems
            if (s.name, item.id) not in done]
    if not work:
        print(f"all {len(items)} questions answered already by every system", file=sys.stderr)
        return
    clients = {s.name: client_for(s.base_url, s.api_key, args, transport) for s in systems}
    judge = None
    if args.scorer == "judge":
        judge_client = client_for(args.judge_url, args.judge_api_key, args, transport)
        clients["\0judge"] = judge_client
        judge = Judge(judge_client, args.judge_model, args.judge_fields, args.retries)
    try:
        await Runner(args, log, clients, judge).run(work)
    finally:
        for client in clients.values():
            await client.aclose()


def write_outputs(args: argparse.Namespace, items: list[Item], systems: list[System],
                  log: PredictionLog) -> Comparison:
    result = compare(items, [s.name for s in systems], log.read())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    about = {"dataset": args.dataset, "questions": str(len(items)), "scorer": args.scorer,
             "answer tag": args.answer_tag or "(none: the whole content is scored)",
             "predictions": (out / "predictions.jsonl").name}
    settings = {s.name: s.settings for s in systems}
    title = " vs ".join(s.name for s in systems) + f" on {Path(args.dataset).name}"
    (out / "report.html").write_text(html.render(result, title, about, settings),
                                     encoding="utf-8")
    report = out / "report.md"
    report.write_text(markdown.render(result, title, reproduce(args), settings) + "\n"
                      + keep_notes(report), encoding="utf-8")
    figures = {"about": about, "systems": settings,
               "summaries": [asdict(s) for s in result.summaries],
               "paired": None if result.paired is None else {
                   **asdict(result.paired), "points": result.paired.points,
                   "p": result.paired.p}}
    (out / "summary.json").write_text(json.dumps(figures, indent=1) + "\n")
    for s in result.summaries:
        print(f"{s.system:16s} accuracy {s.accuracy:6.1%} [{s.ci_low:.1%}, {s.ci_high:.1%}]  "
              f"right {s.right}/{s.questions}  errors {s.errors}  tokens/q "
              f"{s.completion_tokens:.1f}  latency {s.latency_s:.2f}s")
    if result.paired:
        p = result.paired
        print(f"paired: both {p.both}, only {p.a} {p.only_a}, only {p.b} {p.only_b}, neither "
              f"{p.neither}; {p.points:+.1f} points, McNemar p = {p.p:.3g}")
    print(f"wrote {out / 'report.html'}, {out / 'report.md'}, {out / 'summary.json'} "
          f"(predictions: {out / 'predictions.jsonl'})")
    return result


def reproduce(args: argparse.Namespace) -> str:
    """The command line that asks the same (keys left out)."""
    parts = ["python", "-m", "evaluation.compare", "--dataset", args.dataset]
    for key in ("a", "b"):
        if not getattr(args, key):
            continue
        parts += [f"--{key}", getattr(args, key)]
        for option in ("name", "model", "system", "prefill"):
            if value := getattr(args, f"{key}_{option}"):
                parts += [f"--{key}-{option}", value]
        if fields := getattr(args, f"{key}_fields"):
            parts += [f"--{key}-fields", json.dumps(fields)]
    parts += ["--scorer", args.scorer, "--out", args.out]
    if args.scorer == "judge":
        parts += ["--judge-url", args.judge_url, "--judge-model", args.judge_model]
    for option, default in (("tolerance", 0.0), ("answer_tag", "CONCLUSION"), ("limit", None),
                            ("seed", 0), ("concurrency", 8)):
        if (value := getattr(args, option)) != default:
            parts += [f"--{option.replace('_', '-')}", str(value)]
    if args.no_seed:
        parts.append("--no-seed")
    return shlex.join(parts)


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def add_system(parser: argparse.ArgumentParser, key: str, required: bool) -> None:
    group = parser.add_argument_group(f"system {key.upper()}")
    group.add_argument(f"--{key}", metavar="URL",
                       help="the endpoint's base URL, without /v1"
                            + (" (needed unless --report-only)" if required else ""))
    group.add_argument(f"--{key}-name", help=f"its label (default: {key.upper()})")
    group.add_argument(f"--{key}-model",
                       help="the model to ask (default: the first of its /v1/models)")
    group.add_argument(f"--{key}-fields", type=json_object, default={}, metavar="JSON",
                       help="fields merged into every request, e.g. '{\"beam_width\": 4, "
                            "\"selector\": \"verify\", \"return_trace\": true}' or "
                            "'{\"temperature\": 0, \"max_tokens\": 512}'")
    group.add_argument(f"--{key}-api-key", help="sent as a Bearer token")
    group.add_argument(f"--{key}-system", metavar="TEXT", help="a system message before each "
                       "question")
    group.add_argument(f"--{key}-prefill", metavar="TEXT",
                       help="the start of the answer, continued by the model (an assistant "
                            "message with continue_final_message, as vLLM takes it): e.g. "
                            "'<CONCLUSION>' asks a staged model for its answer directly")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evaluation.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True,
                        help="a .jsonl or .tsv file, or shapes:<split>:<n>[:<seed>]")
    parser.add_argument("--help-dataset", action="version", version=datasets.__doc__,
                        help="describe the dataset formats and exit")
    add_system(parser, "a", required=True)
    add_system(parser, "b", required=False)
    parser.add_argument("--scorer", choices=SCORERS, default="auto",
                        help="how an answer is scored (default: %(default)s: choice for "
                             "multiple choice, numeric for a number, normalised otherwise)")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="numeric scorer: allowed error, relative (absolute below 1) "
                             "(default: %(default)s)")
    parser.add_argument("--judge-url", help="judge scorer: the judge's base URL")
    parser.add_argument("--judge-model", help="judge scorer: the judge's model")
    parser.add_argument("--judge-fields", type=json_object, default={}, metavar="JSON",
                        help="judge scorer: fields merged into its requests")
    parser.add_argument("--judge-api-key", help="judge scorer: sent as a Bearer token")
    parser.add_argument("--answer-tag", default="CONCLUSION",
                        help="when the content holds <TAG>...</TAG> stages, score the TAG "
                             "stage's text ('' to score the whole content; default: "
                             "%(default)s)")
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first N questions of the dataset")
    parser.add_argument("--seed", type=int, default=0,
                        help="request seeds derive from it and the question id (default: "
                             "%(default)s)")
    parser.add_argument("--no-seed", action="store_true", help="send no seed")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="requests in flight at once, all systems together (default: "
                             "%(default)s)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="per request, seconds (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=4,
                        help="retries after a connection error, 429 or 503 (default: "
                             "%(default)s)")
    parser.add_argument("--out", default="comparison",
                        help="the folder for predictions.jsonl, report.html and summary.json "
                             "(default: %(default)s)")
    parser.add_argument("--report-only", action="store_true",
                        help="ask nothing: rewrite the report from the predictions file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.retries < 0 or args.timeout <= 0 or (
            args.limit is not None and args.limit < 1) or args.tolerance < 0:
        parser.error("--concurrency and --limit must be at least 1, --retries and --tolerance "
                     "at least 0, --timeout positive")
    if not args.a and not args.report_only:
        parser.error("give system A's endpoint with --a URL")
    if args.scorer == "judge" and not (args.judge_url and args.judge_model):
        parser.error("the judge scorer needs --judge-url and --judge-model")
    names = [args.a_name or "A", args.b_name or "B"] if args.b else [args.a_name or "A"]
    if len(set(names)) != len(names):
        parser.error("the two systems need different names")
    return args


def systems_from(args: argparse.Namespace,
                 transport: httpx.AsyncBaseTransport | None) -> list[System]:
    systems = []
    for key in ("a", "b"):
        url = getattr(args, key)
        if not url:
            continue
        model = getattr(args, f"{key}_model")
        api_key = getattr(args, f"{key}_api_key")
        if not model:
            model = asyncio.run(served_model(url, api_key, transport))
        systems.append(System(getattr(args, f"{key}_name") or key.upper(), key,
                              url.rstrip("/"), model, getattr(args, f"{key}_fields"), api_key,
                              getattr(args, f"{key}_system"), getattr(args, f"{key}_prefill")))
    return systems


def main(argv: list[str] | None = None,
         transport: httpx.AsyncBaseTransport | None = None) -> Comparison:
    """`transport` stands in for the network (tests)."""
    args = parse_args(argv)
    try:
        items = datasets.load(args.dataset)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from None
    items = items[:args.limit] if args.limit else items
    log = PredictionLog(Path(args.out) / "predictions.jsonl")
    if args.report_only:
        systems = systems_in_file(log.read())
        if not systems:
            raise SystemExit(f"no predictions in {log.path}")
    else:
        systems = systems_from(args, transport)
        try:
            asyncio.run(ask_all(args, items, systems, log, transport))
        except KeyboardInterrupt:
            print(f"\ninterrupted: the answers so far are in {log.path}; the same command "
                  "carries on", file=sys.stderr)
            raise SystemExit(130) from None
    return write_outputs(args, items, systems, log)


if __name__ == "__main__":
    main()
