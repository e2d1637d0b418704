"""The comparison's summary as Markdown (report.md beside report.html), for docs and pull
requests: the command that reproduces it, each system's accuracy with its 95 % interval, tokens
and latency, and for two systems the paired outcomes with the exact McNemar test."""

from __future__ import annotations

import json
from typing import Any

from evaluation.compare.summary import Comparison


def render(result: Comparison, title: str, command: str,
           settings: dict[str, dict[str, Any]]) -> str:
    lines = [f"# {title}", "", "Reproduce (the same command carries on an unfinished run):", "",
             "```bash", command, "```", "", "## Systems", ""]
    for name, setting in settings.items():
        extra = "".join(f", {key} `{setting[key]}`" for key in ("system_prompt", "prefill")
                        if setting.get(key))
        lines.append(f"- **{name}**: `{setting.get('model')}` at {setting.get('base_url')}, "
                     f"request fields `{json.dumps(setting.get('fields') or {})}`{extra}")
    lines += ["", "## Accuracy", "",
              "| system | right | accuracy | 95 % interval | errors | undecided | generated "
              "tokens / q | latency s (mean) |",
              "|---|---|---|---|---|---|---|---|"]
    for s in result.summaries:
        lines.append(f"| {s.system} | {s.right}/{s.questions} | {s.accuracy:.1%} | "
                     f"{s.ci_low:.1%} – {s.ci_high:.1%} | {s.errors} | {s.undecided} | "
                     f"{s.completion_tokens:.1f} | {s.latency_s:.2f} |")
    if result.paired:
        p = result.paired
        lines += ["", "## Paired", "",
                  f"| both right | only {p.a} | only {p.b} | neither | {p.a} − {p.b} | McNemar "
                  "p (exact) |", "|---|---|---|---|---|---|",
                  f"| {p.both} | {p.only_a} | {p.only_b} | {p.neither} | {p.points:+.1f} "
                  f"points | {p.p:.3g} |"]
    lines += ["", "Every question's answers, reasoning and verdicts: `report.html` (filters: only "
              "one system right, neither, failed requests); raw records: `predictions.jsonl`.", ""]
    return "\n".join(lines)
