"""`make bench`: our server beside the alternatives, in one run, on the same tiny model and
the same workload (held-out questions of the model's own task, `tinycot.task`).

1. server overhead: ours at beam_width 1 vs upstream vLLM's OpenAI server, same engine args,
   same generated tokens per request, at concurrency 1, 8 and 32;
2. ours (beam 4, 16 questions in flight) vs the reference code's approach (transformers
   generate, batch 1, no KV reuse; bench/reference.py);
3. the cost of the search: beam 4 vs beam 1 on ours;
4. prefix-cache effectiveness during the beam-4 runs, from vLLM's prefix-cache counters;
5. the selectors' cost: beam 4 with each selector, alternated, at concurrency 1 and at
   saturation; beam 8 beside beam 4 and beam 1;
6. cold start: the first beam-4 request after /ready against the median of the next ones, with
   and without the warm-up before ready (bench/cold_start.py; alone: --cold-start-only);
7. peak server memory (RSS of the server's process tree) at the saturation level, ours at beam
   1, 4 and 8 against upstream vLLM (bench/memory.py).
Writes docs/benchmarks.md. On a GPU machine with upstream vLLM installed it runs unchanged
(the engine picks the GPU); the report names the device it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from bench.cold_start import cold_start, request_bodies
from bench.memory import PeakRss
from bench.reference import run_baseline
from loadtest.config import LoadConfig
from loadtest.runner import LevelResult, run_load
from loadtest.servers import ServerProcess, launch
from loadtest.stats import percentile
from loadtest.workload import load_jsonl, png_data_url

MODEL_NAME = "tiny-cot"
ENGINE_ARGS = ["--max-model-len", "2048", "--gpu-memory-utilization", "0.3",
               "--max-num-seqs", "64"]
KV_CACHE_GIB = "2"  # both servers' CPU KV cache (VLLM_CPU_KVCACHE_SPACE), fixed and equal


@dataclass(frozen=True)
class Plan:
    stage_tokens: int = 64  # above the trained model's longest stages: caps do not cut them
    concurrency: tuple[int, ...] = (1, 8, 32)
    requests_per_slot: int = 4  # requests per level = max(16, concurrency * this)
    beam_requests_c1: int = 8
    beam_requests_sat: int = 64
    saturation: int = 32
    in_flight: int = 16  # questions in flight for ours against the reference
    baseline_questions: int = 4
    rounds: int = 3  # compared loads alternate this many times
    items: int = 32  # distinct questions of the workload
    workload: str = ""  # JSONL of the questions (written by `write_workload`)
    cold_requests: int = 8  # part 6: requests after the first one after /ready

    def requests(self, concurrency: int) -> int:
        return max(16, concurrency * self.requests_per_slot)


QUICK = Plan(stage_tokens=32, concurrency=(1, 8), requests_per_slot=2, beam_requests_c1=4,
             beam_requests_sat=16, saturation=8, in_flight=8, baseline_questions=1, rounds=1,
             cold_requests=4)
SELECTOR_COSTS = ("judge", "verify", "vote", "weighted_vote", "logprob", "auto")  # part 5
CACHE_COUNTERS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
                  "cot_server_search_cached_tokens_total", "cot_server_search_prompt_tokens_total")


def our_server(model_dir: str, plan: Plan, logs: Path, warmup: bool = True,
               log_name: str = "cot-server.log") -> ServerProcess:
    return launch(["-m", "server", "serve", "--model", model_dir, "--served-model-name",
                   MODEL_NAME, "--stage-max-tokens", str(plan.stage_tokens), *ENGINE_ARGS,
                   "--warmup" if warmup else "--no-warmup", *model_flags(model_dir)],
                  logs / log_name, MODEL_NAME)


def model_flags(model_dir: str) -> list[str]:
    """What the model's folder asks of our server: a checkpoint not trained on the stage
    format (`python -m tinycot architectures` writes `"stage_mode": "prompted"` in
    cot_server_model.json, as for any general VLM) is served in prompted mode."""
    marker = Path(model_dir) / "cot_server_model.json"
    mode = json.loads(marker.read_text()).get("stage_mode") if marker.exists() else None
    return ["--stage-mode", mode] if mode else []


def measure_cold_start(model_dir: str, plan: Plan, logs: Path) -> dict[str, Any]:
    """Part 6 (bench/cold_start.py), a fresh server for each side, nothing else running."""
    bodies = request_bodies(load_jsonl(plan.workload), MODEL_NAME, 4 * plan.stage_tokens,
                            1 + plan.cold_requests)
    return cold_start(lambda warm: our_server(
        model_dir, plan, logs, warm, f"cot-server-cold-{'warm' if warm else 'nowarm'}.log"),
        bodies)


def upstream_server(model_dir: str, logs: Path) -> ServerProcess:
    # the same engine settings our adapter uses on the CPU: prefix caching, 32-token blocks
    return launch(["-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
                   "--served-model-name", MODEL_NAME, "--enforce-eager",
                   "--enable-prefix-caching", "--block-size", "32", *ENGINE_ARGS],
                  logs / "vllm.log", MODEL_NAME, ready_path="/health")


def write_workload(plan: Plan, logs: Path) -> Plan:
    """The tiny model's own task: held-out shape questions (`tinycot.task`), written as
    the load generator's JSONL so every load and the reference read the same items."""
    from tinycot.task import held_out

    path = logs / "workload.jsonl"
    path.write_text("".join(json.dumps({"image": png_data_url(e.image), "question": e.question})
                            + "\n" for e in held_out(plan.items, seed=1)))
    return replace(plan, workload=str(path))


def load(server: ServerProcess, plan: Plan, concurrency: int, requests: int, max_tokens: int,
         extra: dict[str, Any]) -> LevelResult:
    config = LoadConfig(base_url=server.base_url, model=server.model,
                        concurrency=(concurrency,), requests=requests, warmup=2,
                        max_tokens=max_tokens, stream=False, extra_body=extra,
                        dataset=plan.workload, progress=False, timeout_s=600)
    return asyncio.run(run_load(config)).levels[0]


def figures(levels: list[LevelResult]) -> dict[str, Any]:
    """Throughput and p50 of the successful requests of one or more runs of the same load,
    pooled; failures are counted, not hidden."""
    ok = [r for level in levels for r in level.records if r.status == 200]
    if not ok:
        raise RuntimeError(f"no request succeeded: {levels[0].summary.errors_by_status}")
    return {"rps": len(ok) / sum(level.wall_s for level in levels),
            "p50": percentile([r.latency_s for r in ok], 50),
            "tokens": sum(r.output_tokens or 0 for r in ok) / len(ok),
            "failed": sum(level.summary.failed for level in levels), "runs": len(levels),
            "errors": sorted({r.error or str(r.status) for level in levels
                              for r in level.records if r.status != 200})}


def alternate(loads: dict[str, Callable[[], LevelResult]], rounds: int
              ) -> dict[str, dict[str, Any]]:
    """Run the loads in turn, `rounds` times over, so that whatever else the machine does
    weighs on each of them alike; each load's runs are pooled."""
    runs: dict[str, list[LevelResult]] = {name: [] for name in loads}
    for _ in range(rounds):
        for name, run in loads.items():
            runs[name].append(run())
    return {name: figures(levels) for name, levels in runs.items()}


class ApiCpu:
    """CPU seconds (user + system) the API process of each server spends on the loads run
    through `timed`, and the requests of those loads: what serving HTTP costs per request
    beside the engine (the engine core and its worker are other processes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.requests: dict[str, int] = {}

    def timed(self, side: str, server: ServerProcess, run: Callable[[], LevelResult]
              ) -> Callable[[], LevelResult]:
        def measured() -> LevelResult:
            process = psutil.Process(server.process.pid)
            before = sum(process.cpu_times()[:2])
            level = run()
            self.seconds[side] = (self.seconds.get(side, 0.0)
                                  + sum(process.cpu_times()[:2]) - before)
            self.requests[side] = self.requests.get(side, 0) + len(level.records)
            return level
        return measured

    def ms_per_request(self, side: str) -> float:
        return 1000 * self.seconds[side] / max(1, self.requests[side])


def server_overhead(ours: ServerProcess, upstream: ServerProcess, plan: Plan
                    ) -> dict[str, dict[int, dict[str, Any]]]:
    """Part 1. Upstream generates exactly as many tokens per request as ours did on average
    in a first run of ours (which also warms both caches of ours)."""
    budget = 4 * plan.stage_tokens
    result: dict[str, dict[int, dict[str, Any]]] = {"ours": {}, "upstream": {}}
    for c in plan.concurrency:
        n = plan.requests(c)
        tokens = max(1, round(figures([load(ours, plan, c, n, budget,
                                            {"beam_width": 1})])["tokens"]))
        cpu = ApiCpu()
        with PeakRss(ours.process.pid) as mine, PeakRss(upstream.process.pid) as theirs:
            pair = alternate({"ours": cpu.timed("ours", ours, partial(
                                  load, ours, plan, c, n, budget, {"beam_width": 1})),
                              "upstream": cpu.timed("upstream", upstream, partial(
                                  load, upstream, plan, c, n, tokens, {"ignore_eos": True}))},
                             plan.rounds)
        for side, figs in pair.items():
            result[side][c] = {**figs, "api_cpu_ms": cpu.ms_per_request(side)}
        result["ours"][c]["rss_peak_mib"] = mine.mib
        result["upstream"][c]["rss_peak_mib"] = theirs.mib
    return result


def search_cost(ours: ServerProcess, plan: Plan) -> dict[str, Any]:
    """Parts 2 to 4 on our server: beam 4 against beam 1 at concurrency 1 and at saturation,
    beam 4 with `in_flight` questions, and the prefix-cache counters over the beam-4 runs."""
    budget, beam, greedy = 4 * plan.stage_tokens, {"beam_width": 4, "selector": "judge"}, {
        "beam_width": 1}
    beam8 = {**beam, "beam_width": 8}
    counted = dict.fromkeys(CACHE_COUNTERS, 0.0)

    def beam_run(concurrency: int, requests: int) -> LevelResult:
        before = {k: ours.counter(k) for k in CACHE_COUNTERS}
        level = load(ours, plan, concurrency, requests, budget, beam)
        for k in CACHE_COUNTERS:
            counted[k] += ours.counter(k) - before[k]
        return level

    def at_saturation(extra: dict[str, Any]) -> Callable[[], LevelResult]:
        """A saturation load, its peak server memory kept (the largest over its runs)."""
        def run() -> LevelResult:
            with PeakRss(ours.process.pid) as peak:
                level = (beam_run(plan.saturation, plan.beam_requests_sat) if extra is beam
                         else load(ours, plan, plan.saturation, plan.beam_requests_sat, budget,
                                   extra))
            key = f"beam{extra['beam_width']}"
            rss[key] = max(rss.get(key, 0.0), peak.mib)
            return level
        return run

    rss: dict[str, float] = {}
    c1 = alternate({"beam": lambda: beam_run(1, plan.beam_requests_c1),
                    "beam8": partial(load, ours, plan, 1, plan.beam_requests_c1, budget, beam8),
                    "greedy": lambda: load(ours, plan, 1, plan.beam_requests_c1, budget,
                                           greedy)},
                   plan.rounds)
    sat = alternate({"beam": at_saturation(beam), "beam8": at_saturation(beam8),
                     "greedy": at_saturation(greedy)}, plan.rounds)
    in_flight = figures([beam_run(plan.in_flight, 2 * plan.in_flight)])
    by_selector = {name: dict.fromkeys(CACHE_COUNTERS[:2], 0.0) for name in SELECTOR_COSTS}

    def selector_run(name: str, concurrency: int, requests: int) -> LevelResult:
        before = {k: ours.counter(k) for k in CACHE_COUNTERS[:2]}
        level = load(ours, plan, concurrency, requests, budget,
                     {"beam_width": 4, "selector": name})
        for k in CACHE_COUNTERS[:2]:
            by_selector[name][k] += ours.counter(k) - before[k]
        return level

    selectors = {
        level: alternate({name: partial(selector_run, name, c, n) for name in SELECTOR_COSTS},
                         plan.rounds)
        for level, c, n in (("c1", 1, plan.beam_requests_c1),
                            ("sat", plan.saturation, plan.beam_requests_sat))}
    for name, counts in by_selector.items():  # the prefix-cache share of each selector's runs
        hits_of, queries_of = (counts[k] for k in CACHE_COUNTERS[:2])
        selectors["sat"][name]["cache_share"] = hits_of / max(1.0, queries_of)
    hits, queries, cached, prompt = (counted[k] for k in CACHE_COUNTERS)
    return {"beam_c1": c1["beam"], "greedy_c1": c1["greedy"], "beam_sat": sat["beam"],
            "greedy_sat": sat["greedy"], "beam8_c1": c1["beam8"], "beam8_sat": sat["beam8"],
            "rss_peak_sat_mib": rss, "beam_in_flight": in_flight, "selectors": selectors,
            "cache": {"vllm_hit_share": hits / max(1.0, queries),
                      "search_cached_share": cached / max(1.0, prompt)}}


def measure_servers(model_dir: str, plan: Plan, logs: Path) -> dict[str, Any]:
    """Both servers run side by side; only one is under load at a time."""
    ours = our_server(model_dir, plan, logs)
    try:
        upstream = upstream_server(model_dir, logs)
        try:
            overhead = server_overhead(ours, upstream, plan)
        finally:
            upstream.stop()
        return {"greedy": overhead["ours"], "upstream": overhead["upstream"],
                **search_cost(ours, plan)}
    finally:
        ours.stop()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch
    import vllm

    return (f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, vLLM "
            f"{vllm.__version__} on {device()}, torch {torch.__version__}")


def device() -> str:
    """What the engine computes on: the GPU where torch sees one, else the CPU build."""
    import torch

    if torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(0)})"
    return "CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default="models/tiny-cot", help="local model folder")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown report")
    parser.add_argument("--logs", default="out/bench", help="server logs and raw JSON")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--cold-start-only", action="store_true",
                        help="only part 6 (cold start): prints its rows and writes "
                        "<logs>/cold_start.json, leaves the report as it is")
    args = parser.parse_args(argv)
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    plan = write_workload(QUICK if args.quick else Plan(), logs)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = KV_CACHE_GIB  # inherited by both servers
    if args.cold_start_only:
        from bench.report import cold_start_rows

        cold = measure_cold_start(args.model_dir, plan, logs)
        (logs / "cold_start.json").write_text(json.dumps(cold, indent=2) + "\n")
        print("\n".join(cold_start_rows({"ours": {"cold_start": cold}})))
        return
    ours = measure_servers(args.model_dir, plan, logs)
    ours["cold_start"] = measure_cold_start(args.model_dir, plan, logs)
    upstream = ours.pop("upstream")
    (logs / "servers.json").write_text(json.dumps(ours, indent=2) + "\n")  # kept if the rest fails
    items = load_jsonl(plan.workload)[:plan.baseline_questions]
    baseline = run_baseline(args.model_dir, items, beam_width=4,
                            stage_max_tokens=plan.stage_tokens)
    baseline.pop("answers")
    results = {"plan": plan.__dict__, "model": args.model_dir, "ours": ours, "upstream": upstream,
               "baseline": baseline, "machine": machine(), "device": device(),
               "load_average": [load_before, os.getloadavg()[0]],
               "wall_s": time.monotonic() - started}
    (logs / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    from bench.report import render

    text = render(results, "python -m bench" + (" --quick" if args.quick else ""))
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
