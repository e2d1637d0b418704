"""The evaluation's Markdown report and plot: the accuracy/compute table, what the selectors
chose (from `eval_judge`), paired comparisons between configurations, and hand-written notes
kept from the previous report (everything after the NOTES_MARKER line)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from loadtest.eval_judge import SelectionReport, mcnemar_p

if TYPE_CHECKING:
    from loadtest.eval import Answer, Summary

NOTES_MARKER = "<!-- notes: kept when the report is regenerated -->"
JUDGED_STAGES = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION", "complete answer")
# (a, b, why the pair is worth comparing)
PAIRS = (
    ("judge-4", "best_of_n-4", "stage-level search against best-of-N at similar compute"),
    ("judge-4", "greedy", "stage-level search against no search"),
    ("best_of_n-4", "greedy", "best-of-N against no search"),
    ("logprob-4", "judge-4", "the logprob selector against the judge"),
    ("auto-4", "judge-4", "the auto selector against always judging"),
)


def markdown(summaries: list[Summary], args: argparse.Namespace, plot: str) -> str:
    lines = [
        "# Accuracy versus compute on held-out shape questions", "",
        f"{summaries[0].questions if summaries else 0} held-out questions "
        f"(`server.shapes_data`, seed {args.seed}), model `{args.model}`, concurrency "
        f"{args.concurrency}. Generated tokens count every candidate and judge verdict "
        "(`usage.completion_tokens`). Reproduce against a running `make serve` with:", "",
        f"    make eval EVAL_ARGS='--questions {summaries[0].questions if summaries else 0} "
        f"--concurrency {args.concurrency} --seed {args.seed}'", "",
        "| configuration | accuracy | 95 % interval | generated tokens / question "
        "| latency / question (s) | wall time / question (s) | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(f"| {s.config} | {s.accuracy:.1%} | {s.ci_low:.1%}–{s.ci_high:.1%} | "
                     f"{s.tokens_per_question:.1f} | {s.latency_s:.2f} | "
                     f"{s.wall_s_per_question:.2f} | {s.errors} |")
    lines += ["", f"![accuracy versus generated tokens]({plot})", ""]
    return "\n".join(lines)


def plot(summaries: list[Summary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for s in summaries:
        axes.errorbar(s.tokens_per_question, s.accuracy,
                      yerr=[[s.accuracy - s.ci_low], [s.ci_high - s.accuracy]], fmt="o",
                      capsize=3)
        axes.annotate(s.config, (s.tokens_per_question, s.accuracy), textcoords="offset points",
                      xytext=(5, 5), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("generated tokens per question (log scale)")
    axes.set_ylabel("accuracy")
    axes.set_title("Accuracy versus compute")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def selection_table(summaries: list[Summary], reports: list[SelectionReport]) -> list[str]:
    accuracy = {s.config: s.accuracy for s in summaries}
    lines = [
        "## What the selectors chose", "",
        "A candidate is right when its text is the reference stage's (for a CONCLUSION, the "
        "right answer; for best-of-N, a chain with the right answer). *Oracle*: questions with "
        "a right CONCLUSION among the final candidates. *Judge*: of the comparisons where "
        "exactly one of the pair was right, the share decided for it (n in brackets; 50 % is "
        "a coin). *Judged*: stages with a choice that the judge decided.", "",
        "| configuration | accuracy | oracle | " + " | ".join(
            f"judge: {s}" for s in JUDGED_STAGES) + " | judged |",
        "|---|---|---|" + "---|" * len(JUDGED_STAGES) + "---|",
    ]
    for r in reports:
        cells = [f"{_pct(r.judge[s].accuracy)} ({r.judge[s].decisive})" if s in r.judge
                 else "–" for s in JUDGED_STAGES]
        judged = (f"{r.stages_judged}/{r.stages_with_choice}" if r.stages_with_choice
                  else "–")
        lines.append(f"| {r.config} | {accuracy.get(r.config, 0.0):.1%} | "
                     f"{r.oracle_share:.1%} | " + " | ".join(cells) + f" | {judged} |")
    return [*lines, ""]


def paired(summaries: list[Summary], answers: list[Answer]) -> list[str]:
    by_config = {s.config: s for s in summaries}
    right = {(a.config, a.index): a.correct for a in answers}
    lines = ["## Paired comparisons", "",
             "Same questions, same seeds. *Only a* / *only b*: questions one configuration got "
             "right and the other wrong; p is the exact McNemar test (below 0.05: unlikely to "
             "be chance).", "",
             "| a | b | what it asks | accuracy a / b | tokens a / b | only a | only b | p |",
             "|---|---|---|---|---|---|---|---|"]
    for a, b, why in PAIRS:
        if a not in by_config or b not in by_config:
            continue
        indices = {i for (c, i) in right if c == a} & {i for (c, i) in right if c == b}
        only_a = sum(right[(a, i)] and not right[(b, i)] for i in indices)
        only_b = sum(right[(b, i)] and not right[(a, i)] for i in indices)
        sa, sb = by_config[a], by_config[b]
        lines.append(f"| {a} | {b} | {why} | {sa.accuracy:.1%} / {sb.accuracy:.1%} | "
                     f"{sa.tokens_per_question:.0f} / {sb.tokens_per_question:.0f} | {only_a} | "
                     f"{only_b} | {mcnemar_p(only_a, only_b):.3f} |")
    return [*lines, ""]


def findings(summaries: list[Summary], reports: list[SelectionReport],
             answers: list[Answer]) -> str:
    return "\n".join(selection_table(summaries, reports) + paired(summaries, answers))


def keep_notes(out: Path) -> str:
    """The hand-written notes of the report at `out` (from the marker on), or a fresh marker."""
    if out.exists():
        text = out.read_text()
        if NOTES_MARKER in text:
            return text[text.index(NOTES_MARKER):]
    return NOTES_MARKER + "\n"
