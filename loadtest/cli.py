"""cot-loadtest / python -m loadtest: argument parsing, the run, the report. Nothing else."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from loadtest.config import DEFAULT_REQUESTS, LoadConfig
from loadtest.report import markdown, write_report
from loadtest.runner import run_load
from loadtest.stats import Slo
from loadtest.workload import DEFAULT_IMAGE_SIZES

EXAMPLES = """examples:
  python -m loadtest --base-url http://127.0.0.1:8000 --model tiny-cot --concurrency 1,8,32 \\
      --requests 64 --extra-body '{"beam_width": 4}' --slo-latency 10 --out out/c-sweep
  python -m loadtest --base-url http://127.0.0.1:8000/v1 --model tiny-cot --rate 2,4 \\
      --duration 60 --no-stream --slo-latency 5
"""


def comma_list(convert: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(convert(part) for part in text.split(",") if part.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cot-loadtest", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load generator for any OpenAI-compatible chat-completions server.\n"
                    "Sends chat requests with an image and a question, in a closed loop at\n"
                    "fixed concurrency or an open loop with Poisson arrivals, and reports\n"
                    "latency/TTFT percentiles, throughput, errors and goodput under an SLO\n"
                    "(JSON of every request, Markdown summary, PNG plot).")
    target = parser.add_argument_group("target")
    target.add_argument("--base-url", required=True,
                        help="server URL, with or without the trailing /v1")
    target.add_argument("--model", required=True, help="model name sent in each request")
    target.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                        help="bearer token (default: $OPENAI_API_KEY, else none)")
    load = parser.add_argument_group("load (each sweep level runs after the previous one)")
    mode = load.add_mutually_exclusive_group()
    mode.add_argument("--concurrency", type=comma_list(int), default=(1,), metavar="N[,N...]",
                      help="closed loop: requests in flight, a comma list sweeps (default 1)")
    mode.add_argument("--rate", type=comma_list(float), default=(), metavar="R[,R...]",
                      help="open loop: Poisson arrivals per second, a comma list sweeps")
    load.add_argument("--max-connections", type=int, default=256,
                      help="open loop: connection-pool size, the cap on requests in flight "
                           "(default 256)")
    load.add_argument("--requests", type=int, default=None,
                      help=f"requests per level (default {DEFAULT_REQUESTS} unless --duration "
                           "is given; with both, whichever ends first)")
    load.add_argument("--duration", type=float, default=None,
                      help="seconds per level during which requests start; in-flight ones "
                           "then finish")
    load.add_argument("--warmup", type=int, default=2,
                      help="unmeasured requests before the first level (default 2)")
    load.add_argument("--timeout", type=float, default=120.0,
                      help="per-request limit in seconds, counted as status 0 (default 120)")
    request = parser.add_argument_group("requests")
    request.add_argument("--max-tokens", type=int, default=128,
                         help="max_tokens of each request (default 128)")
    request.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                         help="stream (SSE, measures TTFT) or not (default: stream)")
    request.add_argument("--extra-body", type=json_object, default={},
                         help="JSON object merged into each request body, e.g. "
                              "'{\"beam_width\": 4, \"return_trace\": true}'")
    workload = parser.add_argument_group("workload (items are used round-robin over the run)")
    workload.add_argument("--dataset", default=None,
                          help="JSONL of {\"image\": path or URL, \"question\": text} lines; "
                               "paths are relative to the file (default: procedural images)")
    workload.add_argument("--num-images", type=int, default=64,
                          help="procedural image-question items (default 64)")
    workload.add_argument("--image-sizes", type=comma_list(int), default=DEFAULT_IMAGE_SIZES,
                          metavar="PX[,PX...]",
                          help="procedural image sides in pixels, used in turn "
                               "(default 64,128,256,512)")
    workload.add_argument("--seed", type=int, default=0,
                          help="seed of the procedural images and the Poisson arrivals")
    output = parser.add_argument_group("SLO and output")
    output.add_argument("--slo-latency", type=float, default=None,
                        help="goodput SLO: end-to-end latency bound in seconds")
    output.add_argument("--slo-ttft", type=float, default=None,
                        help="goodput SLO: time-to-first-token bound in seconds (a "
                             "non-streamed request is judged by its latency)")
    output.add_argument("--out", default=None,
                        help="folder for results.json, summary.md and "
                             "latency_vs_throughput.png (default out/loadtest-TIMESTAMP)")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    return LoadConfig(
        base_url=args.base_url, model=args.model, api_key=args.api_key,
        concurrency=args.concurrency, rates=args.rate, max_connections=args.max_connections,
        requests=args.requests, duration_s=args.duration, warmup=args.warmup,
        timeout_s=args.timeout, max_tokens=args.max_tokens, stream=args.stream,
        extra_body=args.extra_body, dataset=args.dataset, num_items=args.num_images,
        image_sizes=args.image_sizes, seed=args.seed,
        slo=Slo(latency_s=args.slo_latency, ttft_s=args.slo_ttft),
        progress=not args.no_progress)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when at least one measured request succeeded, 1 otherwise."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    out_dir = args.out or f"out/loadtest-{datetime.now():%Y%m%d-%H%M%S}"
    result = asyncio.run(run_load(config))
    paths = write_report(result, out_dir)
    print(markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    succeeded = sum(level.summary.succeeded for level in result.levels)
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
