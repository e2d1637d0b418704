"""The benchmark's figures as a Markdown report with the ratios beside their targets."""

from __future__ import annotations

from typing import Any


def _row(name: str, value: float, target: str, ok: bool, detail: str) -> str:
    return f"| {name} | {value:.2f} | {target} | {'met' if ok else 'missed'} | {detail} |"


def ratios(results: dict[str, Any]) -> list[str]:
    ours, upstream, plan = results["ours"], results["upstream"], results["plan"]
    rows = []
    for c, mine in ours["greedy"].items():
        theirs = upstream[c]
        tput, lat = mine["rps"] / theirs["rps"], mine["p50"] / theirs["p50"]
        detail = (f"{mine['rps']:.2f} vs {theirs['rps']:.2f} req/s; p50 {mine['p50']:.3f} vs "
                  f"{theirs['p50']:.3f} s; {mine['tokens']:.0f} tokens/request")
        rows.append(_row(f"1. throughput ratio, concurrency {c}", tput, "≥ 0.95", tput >= 0.95,
                         detail))
        rows.append(_row(f"1. p50 latency ratio, concurrency {c}", lat, "≤ 1.05", lat <= 1.05,
                         "ours / upstream vLLM"))
    baseline = results["baseline"]
    speedup = ours["beam_in_flight"]["rps"] / baseline["questions_per_s"]
    rows.append(_row(f"2. questions/s vs reference approach ({plan['in_flight']} in flight)",
                     speedup, "≥ 30", speedup >= 30,
                     f"{ours['beam_in_flight']['rps']:.3f} vs "
                     f"{baseline['questions_per_s']:.4f} q/s; reference made "
                     f"{baseline['generate_calls']} generate calls for "
                     f"{baseline['questions']} questions"))
    lat = ours["beam_c1"]["p50"] / ours["greedy_c1"]["p50"]
    rows.append(_row("3. latency beam 4 / beam 1, concurrency 1", lat, "≤ 1.4", lat <= 1.4,
                     f"p50 {ours['beam_c1']['p50']:.3f} vs {ours['greedy_c1']['p50']:.3f} s"))
    tput = ours["beam_sat"]["rps"] / ours["greedy_sat"]["rps"]
    rows.append(_row(f"3. throughput beam 4 / beam 1, concurrency {plan['saturation']}", tput,
                     "≥ 0.30", tput >= 0.30, f"{ours['beam_sat']['rps']:.2f} vs "
                     f"{ours['greedy_sat']['rps']:.2f} req/s"))
    share = ours["cache"]["vllm_hit_share"]
    rows.append(_row("4. prompt tokens served from prefix cache (beam-4 runs)", share,
                     "≥ 0.90", share >= 0.90, f"vLLM counters; search calls by our own "
                     f"count: {ours['cache']['search_cached_share']:.2f}"))
    return rows


def load_note(results: dict[str, Any]) -> list[str]:
    """Other work on the machine skews a run: say how busy it was."""
    if "load_average" not in results:
        return []
    before, after = results["load_average"]
    return [f"One-minute load average at the start and end of the run: {before:.1f} and "
            f"{after:.1f}; above the core count, other processes competed for the CPU and "
            "the figures are noisy.", ""]


def failures(results: dict[str, Any]) -> int:
    ours, upstream = results["ours"], results["upstream"]
    runs = [*ours["greedy"].values(), *upstream.values(),
            *(ours[k] for k in ("beam_c1", "greedy_c1", "beam_sat", "greedy_sat",
                                "beam_in_flight"))]
    return int(sum(run.get("failed", 0) for run in runs))


NOTES = """## What limits the figures

- **Server overhead (1).** Our server drives the stages itself: a beam-width-1 answer is four
  engine calls (one per stage), where the upstream server makes one call for the same number
  of tokens. Each extra call costs a scheduling round and a (cached) prefill on the engine; on
  a tiny model whose decode step is a few milliseconds, that fixed cost is a visible share.
  Logprobs are requested only when a selector reads them (they cost about a quarter of decode
  time on this CPU build).
- **Prefix cache (4).** Candidate calls extend the previous prompt token for token (generated
  tokens are reused as they are, not re-tokenised), so nearly all of their prompt is cached.
  A pairwise judge prompt must show the second candidate after the first, so its tokens
  (plus the question to the judge) can never be cached: with the tiny model's short image
  (about 30 tokens) and short stages, that tail is a large share of each judge prompt. With a
  real VLM (hundreds to thousands of image tokens) the shared prefix dominates and the share
  rises accordingly. Each comparison is judged in both orders (position bias), which doubles
  the judge's uncached tail; `--no-judge-both-orders` halves it.
- All servers run on the same 2 cores as the load generator; figures from one run are
  comparable with each other, not with other machines.
"""


def render(results: dict[str, Any], command: str) -> str:
    lines = [
        "# Benchmarks", "",
        f"Reproduce with `make bench` (`{command}`); the figures below are from the latest "
        f"run, which took {results['wall_s'] / 60:.1f} minutes.", "",
        f"Machine: {results['machine']}.", "",
        *load_note(results),
        f"All runs use the tiny default model (`{results.get('model', 'models/tiny-cot')}`) "
        "on the CPU engine, non-streaming requests with one procedural image and a question "
        f"each, and a per-stage cap of {results['plan']['stage_tokens']} tokens. Both servers "
        "run side by side, one under load at a time; loads that are compared with each other "
        f"alternate {results['plan'].get('rounds', 1)} times and their runs are pooled, so "
        "that other work on the machine weighs on both sides alike.", "",
        "| measure | ratio | target | | measured |", "|---|---|---|---|---|",
        *ratios(results), "",
        f"Failed requests (counted out of the figures): {failures(results)}.", "",
        NOTES,
    ]
    return "\n".join(lines) + "\n"
