"""The side-by-side HTML report of a comparison: one self-contained file (no network, no
external script) with the summary (accuracy and its 95 % interval, tokens, latency per system;
for two systems the paired outcomes and the exact McNemar test) and one row per question with
the image, the question, the reference and each system's answer, verdict and reasoning.

Filter buttons show only the questions both got right, only A, only B or neither (one system:
right / wrong), and any failed request; the filter is also read from the address's fragment
(`report.html#only-a`) so a link can point at it."""

from __future__ import annotations

import html
import json
from typing import Any

from evaluation.compare.datasets import Item
from evaluation.compare.predictions import Prediction
from evaluation.compare.summary import Comparison

MAX_INLINE_IMAGE = 300_000  # characters of a data: URL shown as a thumbnail

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.8em 0}
th,td{border:1px solid #ccc;padding:.35em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.right{color:#176f2c;font-weight:600}.wrong{color:#a4161a;font-weight:600}
.undecided,.error{color:#8a6100;font-weight:600}
pre{white-space:pre-wrap;margin:.3em 0;max-width:48em;font-size:12px}
.filters button{margin-right:.4em;padding:.3em .7em;border:1px solid #888;background:#fff;
border-radius:4px;cursor:pointer}
.filters button[aria-pressed=true]{background:#224;color:#fff}
img.thumb{width:96px;image-rendering:pixelated;border:1px solid #ddd}
small{color:#666}
"""

SCRIPT = """
function applyFilter(name) {
  const rows = document.querySelectorAll('#questions tbody tr');
  let shown = 0;
  rows.forEach(row => {
    const keep = name === 'all' || row.dataset.outcome === name
      || (name === 'errors' && row.dataset.error === '1');
    row.hidden = !keep;
    if (keep) shown += 1;
  });
  document.querySelectorAll('.filters button').forEach(b => {
    b.setAttribute('aria-pressed', String(b.dataset.filter === name));
  });
  document.getElementById('shown').textContent = String(shown);
}
document.querySelectorAll('.filters button').forEach(b => {
  b.addEventListener('click', () => {
    history.replaceState(null, '', '#' + b.dataset.filter);
    applyFilter(b.dataset.filter);
  });
});
const known = Array.from(document.querySelectorAll('.filters button')).map(b => b.dataset.filter);
const wanted = location.hash.slice(1);
applyFilter(known.includes(wanted) ? wanted : 'all');
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def summary_table(result: Comparison) -> str:
    rows = []
    for s in result.summaries:
        rows.append(
            f"<tr><td>{esc(s.system)}</td><td class=num>{s.right}/{s.questions}</td>"
            f"<td class=num>{pct(s.accuracy)}</td>"
            f"<td class=num>{pct(s.ci_low)} – {pct(s.ci_high)}</td>"
            f"<td class=num>{s.errors}</td><td class=num>{s.undecided}</td>"
            f"<td class=num>{s.completion_tokens:.1f}</td><td class=num>{s.prompt_tokens:.1f}"
            f"</td><td class=num>{s.latency_s:.2f}</td><td class=num>{s.latency_p50_s:.2f}</td>"
            "</tr>")
    return ("<table id=summary><thead><tr><th>system</th><th>right</th><th>accuracy</th>"
            "<th>95 % interval</th><th>errors</th><th>undecided</th>"
            "<th>generated tokens / q</th><th>prompt tokens / q</th><th>latency s (mean)</th>"
            "<th>latency s (p50)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def paired_table(result: Comparison) -> str:
    p = result.paired
    if p is None:
        return ""
    verdict = ("a difference this large would be rare if both were equally good"
               if p.p < 0.05 else "no significant difference at the 5 % level")
    return (f"<h2>Paired</h2><table id=paired><thead><tr><th>both right</th>"
            f"<th>only {esc(p.a)}</th><th>only {esc(p.b)}</th><th>neither</th>"
            f"<th>{esc(p.a)} − {esc(p.b)}</th><th>McNemar p (exact)</th></tr></thead><tbody>"
            f"<tr><td class=num>{p.both}</td><td class=num>{p.only_a}</td>"
            f"<td class=num>{p.only_b}</td><td class=num>{p.neither}</td>"
            f"<td class=num>{p.points:+.1f} points</td><td class=num>{p.p:.3g}</td></tr>"
            f"</tbody></table><p>{verdict} (n = {p.n}).</p>")


def filters(result: Comparison) -> str:
    counts: dict[str, int] = {}
    for item in result.items:
        key = row_outcome(result, item)
        counts[key] = counts.get(key, 0) + 1
    errors = sum(row_error(result, item) for item in result.items)
    if len(result.systems) == 2:
        a, b = result.systems
        choices = [("all", "all"), ("both", "both right"), ("only-a", f"only {a} right"),
                   ("only-b", f"only {b} right"), ("neither", "neither right")]
    else:
        choices = [("all", "all"), ("right", "right"), ("wrong", "wrong")]
    buttons = [f'<button type=button data-filter="{key}">{esc(label)} '
               f'({len(result.items) if key == "all" else counts.get(key, 0)})</button>'
               for key, label in choices]
    buttons.append(f'<button type=button data-filter="errors">failed requests ({errors})'
                   "</button>")
    return (f"<div class=filters>{''.join(buttons)} <small><span id=shown>"
            f"{len(result.items)}</span> shown</small></div>")


def row_outcome(result: Comparison, item: Item) -> str:
    both = result.outcome(item)
    if both is not None:
        return both
    mine = result.prediction(result.systems[0], item)
    return "right" if mine and mine.right else "wrong"


def row_error(result: Comparison, item: Item) -> bool:
    return any(not (p := result.prediction(s, item)) or not p.ok for s in result.systems)


def image_cell(item: Item) -> str:
    if item.image and (item.image.startswith("http") or len(item.image) <= MAX_INLINE_IMAGE):
        return f'<img class=thumb loading=lazy alt="" src="{esc(item.image)}">'
    return f"<small>{esc(item.image_ref)}</small>" if item.image_ref else ""


def verdict(p: Prediction | None) -> str:
    if p is None:
        return "<span class=error>not asked</span>"
    if not p.ok:
        return f"<span class=error>HTTP {p.status or 'error'}</span>"
    if p.correct is None:
        return "<span class=undecided>? undecided</span>"
    return "<span class=right>✓ right</span>" if p.correct else "<span class=wrong>✗ wrong</span>"


def stages_block(p: Prediction) -> str:
    if not p.stages:
        return ""
    lines = []
    for stage in p.stages:
        candidates = stage.get("candidates") or []
        width = f" (1 of {len(candidates)})" if len(candidates) > 1 else ""
        lines.append(f"<b>{esc(stage.get('tag'))}</b>{esc(width)}: {esc(stage.get('text'))}")
    return ("<details><summary>stages</summary><pre>" + "\n".join(lines) + "</pre></details>")


def answer_cell(p: Prediction | None) -> str:
    if p is None or not p.ok:
        error = esc((p.error or "")[:300]) if p else ""
        return f"<td class=answer>{verdict(p)}<pre>{error}</pre></td>"
    read = f" <small>read: {esc(p.read)}</small>" if p.read and p.read != p.scored else ""
    reasoning = (f"<details><summary>reasoning</summary><pre>{esc(p.reasoning)}</pre></details>"
                 if p.reasoning else "")
    cost = f"<small>{p.completion_tokens or 0} tokens, {p.latency_s:.2f} s</small>"
    return (f"<td class=answer>{verdict(p)}{read}<pre>{esc(p.scored)}</pre>{reasoning}"
            f"{stages_block(p)}{cost}</td>")


def question_rows(result: Comparison) -> str:
    rows = []
    for item in result.items:
        cells = "".join(answer_cell(result.prediction(s, item)) for s in result.systems)
        rows.append(
            f'<tr data-id="{esc(item.id)}" data-outcome="{row_outcome(result, item)}" '
            f'data-error="{int(row_error(result, item))}"><td>{esc(item.id)}</td>'
            f"<td>{image_cell(item)}</td><td><pre>{esc(item.prompt)}</pre></td>"
            f"<td>{esc(item.answer)}</td>{cells}</tr>")
    heads = "".join(f"<th>{esc(s)}</th>" for s in result.systems)
    return ("<table id=questions><thead><tr><th>id</th><th>image</th><th>question</th>"
            f"<th>reference</th>{heads}</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def settings_list(settings: dict[str, dict[str, Any]]) -> str:
    items = []
    for name, setting in settings.items():
        extra = "".join(f" {key}: <code>{esc(setting[key])}</code>"
                        for key in ("system_prompt", "prefill") if setting.get(key))
        items.append(f"<li><b>{esc(name)}</b>: {esc(setting.get('model'))} at "
                     f"{esc(setting.get('base_url'))} <code>"
                     f"{esc(json.dumps(setting.get('fields') or {}))}</code>{extra}</li>")
    return f"<ul>{''.join(items)}</ul>"


def render(result: Comparison, title: str, about: dict[str, str],
           settings: dict[str, dict[str, Any]]) -> str:
    facts = "".join(f"<li>{esc(k)}: <code>{esc(v)}</code></li>" for k, v in about.items())
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1><ul>{facts}</ul>"
            f"<h2>Systems</h2>{settings_list(settings)}<h2>Summary</h2>{summary_table(result)}"
            f"{paired_table(result)}<h2>Questions</h2>{filters(result)}{question_rows(result)}"
            f"<script>{SCRIPT}</script></body></html>\n")
