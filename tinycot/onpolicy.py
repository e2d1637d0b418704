"""On-policy candidates for the verifier: what the model itself writes, labelled right or wrong.

    python -m tinycot.onpolicy --base-url http://localhost:8100 --questions 1500 \\
        --out models/onpolicy/round1.jsonl [--seed 0] [--concurrency 8] [--temperature 0.8]

Asks a running cot-server the questions of a training split of its own (`dataset(seed, n,
split="onpolicy")`, never the held-out one) with a stage-level search that keeps every
candidate (`beam_width` 4, the `logprob` selector, `return_trace`), and writes one JSON line
per question: the split, seed and index that regenerate the example (image and reference
stages), and per stage the texts chosen before it (the prefix the candidates were written
after) and every candidate with its label (`right`: the reference stage's text, whitespace and
case aside; for the CONCLUSION, `is_correct`). `tinycot.train --onpolicy FILE` turns them into
verify examples. Resumable: indices already in the file are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tinycot.task import is_correct

SPLIT = "onpolicy"
MODEL = "tiny-cot"
SEARCH = {"beam_width": 4, "selector": "logprob", "return_trace": True,
          "stage_max_tokens": 96, "max_tokens": 512}


# ----------------------------------------------------------------------------- labels


def squash(text: str) -> str:
    """Whitespace collapsed, lower case."""
    return " ".join(text.split()).lower()


def is_right(tag: str, text: str, reference: str) -> bool:
    """Whether a stage text says what the reference stage says."""
    if tag == "CONCLUSION":
        return is_correct(text, reference)
    return bool(text.strip()) and squash(text) == squash(reference)


def final_result(text: str) -> str | None:
    """What a reasoning text concludes: left or not, the most common colour, else its last
    number."""
    if "is not left of" in text:
        return "no"
    if "is left of" in text:
        return "yes"
    colour = re.findall(r"(Red|Green|Blue|Yellow) is the most common", text)
    if colour:
        return colour[-1].lower()
    numbers = re.findall(r"\d+", text)
    return numbers[-1] if numbers else None


def reaches_right(tag: str, text: str, reference: str) -> bool:
    """Whether a stage text leads to the right answer: a REASONING whose final result is the
    reference's (though its steps may differ: a miscount that lands on the right number), any
    other stage as `is_right`. What a selector's choice is finally judged by."""
    if tag == "REASONING":
        return bool(text.strip()) and final_result(text) == final_result(reference)
    return is_right(tag, text, reference)


def label_stages(stages: Sequence[dict[str, Any]], reference: dict[str, str]
                 ) -> list[dict[str, Any]]:
    """A response's stage trace (`choices[0].message.stages`), labelled: per stage its tag,
    the chosen texts of the stages before it, the chosen index, and each candidate's text,
    whether it closed its stage, its mean log-probability and whether it is right."""
    out: list[dict[str, Any]] = []
    prefix: list[str] = []
    for stage in stages:
        tag = stage["tag"]
        candidates = [{"text": c.get("text") or "", "closed": bool(c.get("closed", True)),
                       "mean_logprob": c.get("mean_logprob"),
                       "right": is_right(tag, c.get("text") or "", reference.get(tag, ""))}
                      for c in stage.get("candidates") or []]
        out.append({"tag": tag, "prefix": list(prefix),
                    "chosen_index": stage.get("chosen_index", 0),
                    "fallback": bool(stage.get("fallback", False)), "candidates": candidates})
        prefix.append(stage.get("text") or "")
    return out


def record(split: str, seed: int, index: int, example: Any, message: dict[str, Any],
           temperature: float) -> dict[str, Any]:
    """One output line: what regenerates the example, and the labelled stages."""
    reference = dict(example.stages)
    stages = label_stages(message.get("stages") or [], reference)
    content = message.get("content") or ""
    return {"split": split, "seed": seed, "index": index, "question": example.question,
            "reference": [list(s) for s in example.stages], "temperature": temperature,
            "answer": content, "correct": is_correct(content, example.conclusion),
            "stages": stages}


def wrong_shares(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stage: candidates, how many are wrong (and the share), and how many stages had
    some but not all candidates right (where a selector's choice matters)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        for stage in rec["stages"]:
            row = out.setdefault(stage["tag"], {"candidates": 0, "wrong": 0, "stages": 0,
                                                "mixed": 0})
            rights = [c["right"] for c in stage["candidates"]]
            row["candidates"] += len(rights)
            row["wrong"] += rights.count(False)
            row["stages"] += 1
            row["mixed"] += any(rights) and not all(rights)
    for row in out.values():
        row["wrong_share"] = round(row["wrong"] / row["candidates"], 4) if row["candidates"] else 0
    return out


def done_indices(path: Path) -> set[int]:
    """Indices already written (a torn last line is ignored and asked again)."""
    done: set[int] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                done.add(int(json.loads(line)["index"]))
            except (ValueError, KeyError, TypeError):
                continue
    return done


def load(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The records of one or more files."""
    records = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


# ----------------------------------------------------------------------------- requests


def png_data_url(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def request_body(example: Any, seed: int, temperature: float, model: str = MODEL
                 ) -> dict[str, Any]:
    return {"model": model, "seed": seed, **SEARCH, "temperature": temperature,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": png_data_url(example.image)}},
                {"type": "text", "text": example.question}]}]}


async def wait_ready(client: Any, timeout: float, every: float = 1.0) -> None:
    """Waits until the server's `/ready` answers 200 (a starting server answers 503 to every
    request until its engine is up), or raises `TimeoutError` after `timeout` seconds."""
    import httpx

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        if asyncio.get_running_loop().time() >= deadline:
            raise TimeoutError(f"the server was not ready within {timeout:.0f} s")
        await asyncio.sleep(every)


async def sample(args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    from tqdm import tqdm

    from tinycot.task import dataset

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_indices(out)
    examples = dataset(args.seed, args.questions, split=args.split)
    todo = [i for i in range(args.questions) if i not in done]
    limit = asyncio.Semaphore(args.concurrency)
    failures: list[str] = []
    bar = tqdm(total=len(todo), desc="on-policy questions", unit="q")
    written = 0

    async def ask(client: httpx.AsyncClient, index: int, sink: Any) -> None:
        nonlocal written
        example = examples[index]
        body = request_body(example, args.seed * 1_000_003 + index, args.temperature,
                            args.model)
        async with limit:
            try:
                response = await client.post("/v1/chat/completions", json=body)
                data = response.json()
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}: {json.dumps(data)[:200]}")
                message = data["choices"][0]["message"]
            except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
                failures.append(f"{index}: {exc!r}"[:300])
                bar.update(1)
                return
        sink.write(json.dumps(record(args.split, args.seed, index, example, message,
                                     args.temperature)) + "\n")
        sink.flush()
        written += 1
        bar.update(1)

    async with httpx.AsyncClient(base_url=args.base_url, timeout=args.timeout,
                                 limits=httpx.Limits(max_connections=args.concurrency)
                                 ) as client:
        await wait_ready(client, args.ready_timeout)
        with out.open("a") as sink:
            await asyncio.gather(*(ask(client, i, sink) for i in todo))
    bar.close()
    return {"asked": len(todo), "written": written, "skipped": len(done),
            "failures": len(failures), "first_failures": failures[:5]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tinycot.onpolicy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="a running cot-server")
    parser.add_argument("--questions", type=int, required=True)
    parser.add_argument("--out", required=True, help="JSON lines file (appended to)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default=SPLIT)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--ready-timeout", type=float, default=600.0,
                        help="seconds to wait for the server's /ready before asking")
    args = parser.parse_args(argv)
    if args.split == "held-out":
        parser.error("the held-out split is for checks only")
    summary = asyncio.run(sample(args))
    summary["wrong_by_stage"] = wrong_shares(load([args.out]))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
