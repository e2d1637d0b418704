"""`make bench`: our server beside the alternatives, in one run, on the same tiny model.

1. server overhead: ours at beam_width 1 vs upstream vLLM's OpenAI server, same engine args,
   same generated tokens per request, at concurrency 1, 8 and 32;
2. ours (beam 4, 16 questions in flight) vs the reference code's approach (transformers
   generate, batch 1, no KV reuse; loadtest/reference_baseline.py);
3. the cost of the search: beam 4 vs beam 1 on ours;
4. prefix-cache effectiveness during the beam-4 runs, from vLLM's prefix-cache counters.
Writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.config import LoadConfig
from loadtest.reference_baseline import run_baseline
from loadtest.runner import LevelResult, run_load
from loadtest.servers import ServerProcess, launch
from loadtest.workload import procedural_items

MODEL_NAME = "tiny-cot"
ENGINE_ARGS = ["--max-model-len", "2048", "--gpu-memory-utilization", "0.3",
               "--max-num-seqs", "64"]
KV_CACHE_GIB = "2"  # both servers' CPU KV cache (VLLM_CPU_KVCACHE_SPACE), fixed and equal


@dataclass(frozen=True)
class Plan:
    stage_tokens: int = 32
    concurrency: tuple[int, ...] = (1, 8, 32)
    requests_per_slot: int = 4  # requests per level = max(16, concurrency * this)
    beam_requests_c1: int = 8
    beam_requests_sat: int = 64
    saturation: int = 32
    in_flight: int = 16  # questions in flight for ours against the reference
    baseline_questions: int = 4

    def requests(self, concurrency: int) -> int:
        return max(16, concurrency * self.requests_per_slot)


QUICK = Plan(stage_tokens=16, concurrency=(1, 8), requests_per_slot=2, beam_requests_c1=4,
             beam_requests_sat=16, saturation=8, in_flight=8, baseline_questions=1)


def our_server(model_dir: str, plan: Plan, logs: Path) -> ServerProcess:
    return launch(["-m", "server", "serve", "--model", model_dir, "--served-model-name",
                   MODEL_NAME, "--stage-max-tokens", str(plan.stage_tokens), *ENGINE_ARGS],
                  logs / "cot-server.log", MODEL_NAME)


def upstream_server(model_dir: str, logs: Path) -> ServerProcess:
    # the same engine settings our adapter uses on the CPU: prefix caching, 32-token blocks
    return launch(["-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
                   "--served-model-name", MODEL_NAME, "--enforce-eager",
                   "--enable-prefix-caching", "--block-size", "32", *ENGINE_ARGS],
                  logs / "vllm.log", MODEL_NAME, ready_path="/health")


def load(server: ServerProcess, concurrency: int, requests: int, max_tokens: int,
         extra: dict[str, Any]) -> LevelResult:
    config = LoadConfig(base_url=server.base_url, model=server.model,
                        concurrency=(concurrency,), requests=requests, warmup=2,
                        max_tokens=max_tokens, stream=False, extra_body=extra,
                        num_items=32, image_sizes=(64, 128, 256), progress=False,
                        timeout_s=600)
    return asyncio.run(run_load(config)).levels[0]


def figures(level: LevelResult) -> dict[str, float]:
    """Throughput and p50 of the successful requests; failures are counted, not hidden."""
    s = level.summary
    if s.latency_s is None:
        raise RuntimeError(f"no request succeeded: {s.errors_by_status}")
    ok = [r for r in level.records if r.status == 200]
    return {"rps": s.request_throughput, "p50": s.latency_s.p50,
            "tokens": sum(r.output_tokens or 0 for r in ok) / len(ok), "failed": s.failed}


def measure_ours(model_dir: str, plan: Plan, logs: Path) -> dict[str, Any]:
    server = our_server(model_dir, plan, logs)
    budget = 4 * plan.stage_tokens
    try:
        greedy = {c: figures(load(server, c, plan.requests(c), budget, {"beam_width": 1}))
                  for c in plan.concurrency}
        hits0, queries0 = (server.counter("vllm:prefix_cache_hits_total"),
                           server.counter("vllm:prefix_cache_queries_total"))
        ours0 = {k: server.counter(f"cot_server_search_{k}_tokens_total")
                 for k in ("prompt", "cached")}
        beam = {"beam_width": 4, "selector": "judge"}
        beam_c1 = figures(load(server, 1, plan.beam_requests_c1, budget, beam))
        beam_sat = figures(load(server, plan.saturation, plan.beam_requests_sat, budget, beam))
        greedy_sat = figures(load(server, plan.saturation, plan.beam_requests_sat, budget,
                                  {"beam_width": 1}))
        beam_flight = figures(load(server, plan.in_flight, 2 * plan.in_flight, budget, beam))
        cache = {
            "vllm_hit_share": (server.counter("vllm:prefix_cache_hits_total") - hits0)
            / max(1.0, server.counter("vllm:prefix_cache_queries_total") - queries0),
            "search_cached_share": (server.counter("cot_server_search_cached_tokens_total")
                                    - ours0["cached"])
            / max(1.0, server.counter("cot_server_search_prompt_tokens_total")
                  - ours0["prompt"]),
        }
    finally:
        server.stop()
    return {"greedy": greedy, "beam_c1": beam_c1, "beam_sat": beam_sat,
            "greedy_sat": greedy_sat, "beam_in_flight": beam_flight, "cache": cache}


def measure_upstream(model_dir: str, plan: Plan, logs: Path,
                     tokens: dict[int, float]) -> dict[int, dict[str, float]]:
    """Same load; each request generates exactly as many tokens as ours did on average."""
    server = upstream_server(model_dir, logs)
    try:
        return {c: figures(load(server, c, plan.requests(c), max(1, round(tokens[c])),
                                {"ignore_eos": True}))
                for c in plan.concurrency}
    finally:
        server.stop()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch
    import vllm

    return (f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, vLLM "
            f"{vllm.__version__} (CPU build), torch {torch.__version__}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default="models/tiny-cot", help="local model folder")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown report")
    parser.add_argument("--logs", default="out/bench", help="server logs and raw JSON")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    logs = Path(args.logs)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = KV_CACHE_GIB  # inherited by both servers
    ours = measure_ours(args.model_dir, plan, logs)
    (logs / "ours.json").write_text(json.dumps(ours, indent=2) + "\n")  # kept if a later part fails
    upstream = measure_upstream(args.model_dir, plan, logs,
                                {c: f["tokens"] for c, f in ours["greedy"].items()})
    items = procedural_items(plan.baseline_questions, 0, (64, 128, 256))
    baseline = run_baseline(args.model_dir, items, beam_width=4,
                            stage_max_tokens=plan.stage_tokens)
    baseline.pop("answers")
    results = {"plan": plan.__dict__, "ours": ours, "upstream": upstream,
               "baseline": baseline, "machine": machine(),
               "load_average": [load_before, os.getloadavg()[0]],
               "wall_s": time.monotonic() - started}
    (logs / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    from loadtest.bench_report import render

    text = render(results, "python -m loadtest.bench" + (" --quick" if args.quick else ""))
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
