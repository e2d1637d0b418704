"""A run's results as files: JSON (settings, summaries, every request), Markdown (summary
table) and PNG (latency percentiles against throughput across the sweep)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadtest.runner import LevelResult, RunResult
from loadtest.stats import Distribution

log = logging.getLogger(__name__)

JSON_NAME, MARKDOWN_NAME, PLOT_NAME = "results.json", "summary.md", "latency_vs_throughput.png"


def result_dict(result: RunResult) -> dict[str, Any]:
    return {
        "started_at": result.started_at,
        "config": result.config.public_dict(),
        "levels": [{
            "mode": lv.level.mode, "value": lv.level.value, "label": lv.level.label,
            "summary": asdict(lv.summary),
            "records": [r.to_dict() for r in lv.records],
        } for lv in result.levels],
        "warmup_records": [r.to_dict() for r in result.warmup],
    }


def seconds(distribution: Distribution | None, name: str) -> str:
    return "–" if distribution is None else f"{getattr(distribution, name):.3f}"


def markdown_row(level: LevelResult) -> str:
    s = level.summary
    errors = ", ".join(f"{k}: {v}" for k, v in s.errors_by_status.items()) or "none"
    cells = [
        level.level.label, str(s.requests), str(s.succeeded), errors, f"{s.wall_s:.2f}",
        f"{s.request_throughput:.2f}", f"{s.output_token_throughput:.1f}", f"{s.goodput:.2f}",
        *(seconds(s.latency_s, p) for p in ("p50", "p90", "p99")),
        *(seconds(s.ttft_s, p) for p in ("p50", "p90", "p99")),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(result: RunResult) -> str:
    config = result.config
    slo = config.slo
    slo_text = ", ".join(
        f"{name} ≤ {bound:g} s" for name, bound in (("latency", slo.latency_s),
                                                   ("TTFT", slo.ttft_s)) if bound is not None)
    header = ("| level | requests | ok | errors by status | wall s | req/s | output tok/s "
              "| goodput req/s | latency p50 | p90 | p99 | TTFT p50 | p90 | p99 |")
    lines = [
        f"# Load test: {config.model} at {config.base_url}", "",
        f"- started: {result.started_at}",
        f"- workload: {config.workload_description}; max_tokens {config.max_tokens}; "
        f"{'streaming' if config.stream else 'not streaming'}",
        f"- extra request fields: {json.dumps(config.extra_body) if config.extra_body else 'none'}",
        f"- SLO for goodput: {slo_text or 'none (goodput = successful req/s)'}",
        f"- warm-up requests: {len(result.warmup)}", "",
        "Latency and TTFT in seconds, over successful requests.", "",
        header, "|" + "---|" * (header.count("|") - 1),
        *(markdown_row(level) for level in result.levels), "",
    ]
    return "\n".join(lines)


def plot(result: RunResult, path: Path) -> None:
    """Latency (and TTFT when measured) percentiles against request throughput, one point
    per sweep level."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    levels = [lv for lv in result.levels if lv.summary.latency_s is not None]
    throughput = [lv.summary.request_throughput for lv in levels]
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for name, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^-")):
        axes.plot(throughput, [getattr(lv.summary.latency_s, name) for lv in levels], style,
                  label=f"latency {name}")
    timed = [lv for lv in levels if lv.summary.ttft_s is not None]
    for name, style in (("p50", "o--"), ("p99", "^--")):
        axes.plot([lv.summary.request_throughput for lv in timed],
                  [getattr(lv.summary.ttft_s, name) for lv in timed], style,
                  label=f"TTFT {name}")
    for lv, x in zip(levels, throughput, strict=True):
        axes.annotate(lv.level.label, (x, lv.summary.latency_s.p50),  # type: ignore[union-attr]
                      textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel("throughput (successful requests/s)")
    axes.set_ylabel("seconds")
    axes.set_title(f"{result.config.model}: latency vs throughput")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def write_report(result: RunResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the JSON, Markdown and PNG files into out_dir; returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_NAME, "markdown": out / MARKDOWN_NAME}
    paths["json"].write_text(json.dumps(result_dict(result), indent=2) + "\n")
    paths["markdown"].write_text(markdown(result))
    try:
        plot(result, out / PLOT_NAME)
        paths["plot"] = out / PLOT_NAME
    except ImportError:
        log.warning("matplotlib is not installed: no plot (pip install 'cot-server[loadtest]')")
    return paths
