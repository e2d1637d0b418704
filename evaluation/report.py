"""The evaluation's outputs, all computed from the answers file: the Markdown report (how to
reproduce it, the accuracy/compute table, what the selectors chose, the paired tests, the
targets), its plot of accuracy against generated tokens, a JSON copy of the figures, and the
hand-written notes kept from the previous report (everything from the NOTES_MARKER line on)."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evaluation.analysis import Results, comparisons
from evaluation.configs import (
    BEST_OF_N,
    DEFAULT_CONFIGS,
    GREEDY,
    RETRACE,
    SELECTORS,
    STAGE,
    try_parse,
)
from evaluation.scoring import STAGE_ORDER, Tally
from evaluation.targets import MET, MISSED, Target

METHODS = ("agree", "vote", "verify", "only")  # how `auto` settles a stage


@dataclass(frozen=True)
class RunInfo:
    """What the report says about how the answers were asked."""

    split: str  # "test" or "validation"
    dataset_split: str  # the name tinycot.task seeds the questions with
    seed: int
    model: str
    base_url: str
    concurrency: int
    out: str
    answers_file: str
    configs: str  # the --configs value that reproduces the report ("" for the default set)


def reproduce_command(info: RunInfo, questions: int) -> str:
    parts = ["python", "-m", "evaluation", "--base-url", info.base_url, "--model", info.model,
             "--split", info.split, "--questions", str(questions), "--seed", str(info.seed),
             "--concurrency", str(info.concurrency), "--out", info.out]
    if info.configs:
        parts += ["--configs", info.configs]
    return shlex.join(parts)


def configs_option(names: list[str]) -> str:
    """The --configs value for exactly these configurations ("" when they are the defaults)."""
    if set(names) == {c.name for c in DEFAULT_CONFIGS}:
        return ""
    return ",".join(names)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _tally(t: Tally | None) -> str:
    if t is None or not t.n:
        return "–"
    return f"{_pct(t.accuracy)} ({t.right}/{t.n})"


def header(results: Results, info: RunInfo) -> list[str]:
    questions = results.questions
    validation = info.split == "validation"
    title = ("# Validation run (for tuning: not the reported result)" if validation else
             "# Does the search pay? Accuracy against compute on held-out shape questions")
    return [
        title, "",
        f"{questions} questions of the `{info.dataset_split}` split of `tinycot.task` (seed "
        f"{info.seed}), model `{info.model}`, {len(results.configs)} configurations, asked at "
        f"concurrency {info.concurrency}. Every configuration gets the same questions with the "
        "same request seed per question, so their answers pair up. A question is right when the "
        "answer (`message.content`, the CONCLUSION) matches the expected one "
        "(`tinycot.task.is_correct`); a failed request counts as wrong. *Generated tokens* are "
        "`usage.completion_tokens`: every sampled candidate and every judge or verifier verdict "
        "(one token each), per question.",
        *(["", "This split is for choosing settings; the result is the test split's report."]
          if validation else []),
        "", "## How to reproduce", "",
        "With the server running (`make serve`):", "",
        f"    {reproduce_command(info, questions)}", "",
        f"Every answer is one JSON line in `{info.answers_file}`, written as it arrives; the "
        "same command again asks only what is missing (or failed), and `--report-only` "
        "rewrites this report from that file without asking the server.", "",
    ]


def gap_closed(accuracy: float, room: tuple[float, float] | None) -> str:
    """The share of the headroom over greedy that a configuration's accuracy takes up."""
    if room is None or room[1] <= room[0]:
        return "–"
    return f"{(accuracy - room[0]) / (room[1] - room[0]):.0%}"


def config_table(results: Results, plot_name: str) -> list[str]:
    room = results.headroom()
    lines = [
        "## Accuracy and compute", "",
        "*Oracle*: questions where some final candidate was right (a CONCLUSION candidate, or "
        "for best-of-N a chain): what a perfect selector would have scored. Token figures are "
        "per answered question; *cached*: share of prompt tokens read from the prefix cache. "
        "*Latency*: mean per request; *wall*: each run's elapsed time over its questions (at "
        "that concurrency). *Headroom*: the share of the distance from greedy's accuracy to "
        "the best-of-4 oracle (a perfect pick among four sampled answers"
        + (f": {room[0]:.1%} to {room[1]:.1%}" if room else "")
        + ") that the configuration covers; the targets below ask for points over greedy, "
        "and no search can add more than that distance.", "",
        "| configuration | questions | accuracy | 95 % interval | oracle | headroom "
        "| generated tokens | prompt tokens | cached | latency (s) | wall / question (s) | "
        "errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results.summaries.items():
        oracle = results.selection[name].oracle_share
        lines.append(
            f"| {name} | {s.questions} | {s.accuracy:.1%} | {s.ci_low:.1%}–{s.ci_high:.1%} | "
            f"{oracle:.1%} | {gap_closed(s.accuracy, room)} | {s.completion_tokens:.1f} | "
            f"{s.prompt_tokens:.0f} | "
            f"{s.cached_share:.0%} | {s.latency_s:.2f} | {s.wall_s_per_question:.2f} | "
            f"{s.errors} |")
    lines += ["", f"![accuracy against generated tokens per question]({plot_name})", ""]
    return lines


def selection_table(results: Results) -> list[str]:
    searched = [n for n in results.configs
                if (c := try_parse(n)) is None or c.search != GREEDY]
    keys = [k for k in STAGE_ORDER if any(k in results.selection[n].decisive
                                           or k in results.selection[n].methods
                                           for n in searched)]
    lines = [
        "## What the selectors chose", "",
        "A candidate is right when its text is the reference stage's after whitespace "
        "normalisation (a CONCLUSION: when it is the right answer; a best-of-N chain, "
        "*chains*: when its answer is right). A choice is *decisive* when some but not all of "
        "its usable candidates are right; only those tell a selector from a coin. Each cell: "
        "the share of decisive choices where the selector kept a right candidate (right / "
        "decisive). *Judge pairs*: the judge's pairwise comparisons where exactly one of the "
        "pair was right, decided for that one (50 % is a coin). *REASONING by result*: the "
        "REASONING choices again, with a candidate right when the result it reaches (its final "
        "count, colour or side) is the reference's, whatever its steps: what the verifier is "
        "trained to judge; *all, by result*: all decisive choices counted so.", "",
        "| configuration | " + " | ".join(keys) + " | all decisive | REASONING by result | "
        "all, by result | judge pairs |",
        "|---|" + "---|" * (len(keys) + 4),
    ]
    for name in searched:
        r = results.selection[name]
        cells = [_tally(r.decisive.get(k)) for k in keys]
        pairs = _tally(r.all_pairs) if r.pairs else "–"
        by_result = ((_tally(r.by_result), _tally(r.all_decisive_by_result))
                     if r.by_result.n else ("–", "–"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_tally(r.all_decisive)} | "
                     f"{by_result[0]} | {by_result[1]} | {pairs} |")
    lines.append("")
    return lines + auto_table(results) + retrace_table(results)


def _counts(counts: dict[str, Any]) -> str:
    order = [m for m in METHODS if m in counts] + sorted(set(counts) - set(METHODS))
    return ", ".join(f"{m} {counts[m]}" for m in order if counts[m]) or "–"


def auto_table(results: Results) -> list[str]:
    autos = [n for n in results.configs if (c := try_parse(n)) and c.selector == "auto"]
    if not autos:
        return []
    stages = [k for k in STAGE_ORDER if any(k in results.selection[n].methods for n in autos)]
    lines = ["### How `auto` decided", "",
             "Stages settled because every candidate said the same (*agree*, no engine call), by "
             "a clear majority (*vote*), by the verifier (*verify*), or with one usable "
             "candidate (*only*); last column: the decisive-choice accuracy of each way.", "",
             "| configuration | " + " | ".join(stages) + " | decisive choices by way |",
             "|---|" + "---|" * (len(stages) + 1)]
    for name in autos:
        r = results.selection[name]
        ways = ", ".join(f"{m} {_tally(t)}" for m, t in r.by_method.items() if t.n) or "–"
        lines.append(f"| {name} | " + " | ".join(_counts(r.methods.get(k, {})) for k in stages)
                     + f" | {ways} |")
    return [*lines, ""]


def retrace_table(results: Results) -> list[str]:
    """How often each retracing configuration went back, from which stages, and how its
    questions with and without a retrace fared."""
    runs = [n for n in results.configs
            if any(a.retraces is not None for a in results.answers[n])]
    if not runs:
        return []
    lines = ["### How `retrace` went back", "",
             "Questions whose search went back at least once (a stage's best verifier score "
             "below the threshold), the retraces by the stage that sent it back, and the "
             "accuracy of the questions with and without one.", "",
             "| configuration | questions retraced | retraces by stage | right when retraced "
             "| right otherwise |", "|---|---|---|---|---|"]
    for name in runs:
        answered = [a for a in results.answers[name] if a.retraces is not None]
        went = [a for a in answered if a.retraces]
        stayed = [a for a in answered if not a.retraces]
        stages = Counter(stage for a in went for stage, _ in a.retraces or [])
        by_stage = ", ".join(f"{k} {stages[k]}" for k in STAGE_ORDER if stages[k]) or "–"

        def right(group: list[Any]) -> str:
            return (f"{sum(a.correct for a in group) / len(group):.1%} ({len(group)})"
                    if group else "–")
        lines.append(f"| {name} | {len(went)} of {len(answered)} | {by_stage} | {right(went)} "
                     f"| {right(stayed)} |")
    return [*lines, ""]


KIND_COLUMNS = ("greedy", "bon-verify-4", "stage-verify-4", "stage-verify-8", "retrace-verify-4")


def kind_table(results: Results) -> list[str]:
    """Right answers per question kind (`tinycot.task.question_kind`) for greedy and the
    verifier's searches: where a search pays, and where it has no room left."""
    from tinycot.task import QUESTION_WEIGHTS, question_kind

    names = [n for n in KIND_COLUMNS if results.has(n)]
    if not names:
        return []
    right: dict[str, Counter[str]] = {n: Counter() for n in names}
    asked: dict[str, Counter[str]] = {n: Counter() for n in names}
    for name in names:
        for answer in results.answers[name]:
            kind = question_kind(answer.question) or "other"
            asked[name][kind] += 1
            right[name][kind] += answer.correct
    kinds = [k for k in (*QUESTION_WEIGHTS, "other") if any(asked[n][k] for n in names)]
    lines = ["### By question kind", "",
             "Right answers per kind of question (`tinycot.task.question_kind`), right / asked.",
             "", "| kind | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for kind in kinds:
        cells = [f"{right[n][kind] / asked[n][kind]:.1%} ({right[n][kind]}/{asked[n][kind]})"
                 if asked[n][kind] else "–" for n in names]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def paired_table(results: Results) -> list[str]:
    lines = ["## Paired tests", "",
             "The same questions with the same seeds. *Only a* / *only b*: questions one "
             "configuration got right and the other wrong; p: exact two-sided McNemar test. "
             "*Points*: a's accuracy minus b's. Generated tokens per question beside each, so "
             "a gain at equal or fewer tokens can be read off.", "",
             "| a | b | what it asks | questions | accuracy a / b | points | generated tokens "
             "a / b | only a | only b | p |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for pair, why in comparisons(results):
        lines.append(
            f"| {pair.a} | {pair.b} | {why} | {pair.n} | {pair.accuracy_a:.1%} / "
            f"{pair.accuracy_b:.1%} | {pair.points:+.1f} | {results.tokens(pair.a):.0f} / "
            f"{results.tokens(pair.b):.0f} | {pair.a_only} | {pair.b_only} | {pair.p:.3g} |")
    if len(lines) == 6:
        lines.append("| – | – | no planned pair was run | | | | | | | |")
    return [*lines, ""]


def targets_section(found: list[Target]) -> list[str]:
    met = sum(t.verdict == MET for t in found)
    missed = sum(t.verdict == MISSED for t in found)
    lines = ["## Targets", "",
             f"Written from the numbers above: {met} met, {missed} missed, "
             f"{len(found) - met - missed} not measured.", ""]
    lines += [f"- **{t.verdict}** — {t.name}: {t.detail}." for t in found]
    return [*lines, ""]


def markdown(results: Results, found: list[Target], info: RunInfo, plot_name: str) -> str:
    return "\n".join(header(results, info) + config_table(results, plot_name)
                     + selection_table(results) + kind_table(results) + paired_table(results)
                     + targets_section(found))


def as_json(results: Results, found: list[Target], info: RunInfo) -> dict[str, Any]:
    return {
        "run": asdict(info),
        "summaries": [asdict(s) for s in results.summaries.values()],
        "selection": {n: {"questions": r.questions, "oracle": r.oracle,
                          "decisive": {k: asdict(t) for k, t in r.decisive.items()},
                          "decisive_by_method": {k: asdict(t) for k, t in r.by_method.items()},
                          "decisive_reasoning_by_result": asdict(r.by_result),
                          "judge_pairs": {k: asdict(t) for k, t in r.pairs.items()},
                          "selected_by": {k: dict(c) for k, c in r.methods.items()}}
                      for n, r in results.selection.items()},
        "paired": [{**asdict(p), "points": p.points, "p": p.p, "what": why}
                   for p, why in comparisons(results)],
        "targets": [asdict(t) for t in found],
    }


def plot(results: Results, path: Path, title: str) -> None:
    """Accuracy against generated tokens per question (log scale): a line per selector through
    its stage-search widths, best-of-N as open squares in the selector's colour, greedy as a
    dashed horizontal line (its interval shaded); 95 % intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    colours = plt.get_cmap("tab10")
    figure, axes = plt.subplots(figsize=(9, 5.5))

    def errorbar(names: list[str], **style: Any) -> None:
        s = [results.summaries[n] for n in names]
        below = [max(0.0, x.accuracy - x.ci_low) for x in s]
        above = [max(0.0, x.ci_high - x.accuracy) for x in s]
        axes.errorbar([x.completion_tokens for x in s], [x.accuracy for x in s],
                      yerr=[below, above], capsize=3, **style)

    parsed = {n: c for n in results.configs if (c := try_parse(n))}
    for i, selector in enumerate(SELECTORS):
        colour = colours(i)
        stage = sorted((n for n, c in parsed.items()
                        if c.search == STAGE and c.selector == selector and c.fixed),
                       key=lambda n: parsed[n].width)
        if stage:
            errorbar(stage, fmt="-o", color=colour, label=f"stage search, {selector}")
            for n in stage:
                axes.annotate(f"×{parsed[n].width}", (results.tokens(n),
                              results.summaries[n].accuracy), textcoords="offset points",
                              xytext=(4, 4), fontsize=7, color=colour)
        bon = [n for n, c in parsed.items() if c.search == BEST_OF_N and c.selector == selector
               and c.fixed]
        if bon:
            errorbar(bon, fmt="s", color=colour, markerfacecolor="white", markersize=8,
                     label=f"best-of-N, {selector}")
            for n in bon:
                axes.annotate(f"N={parsed[n].width}", (results.tokens(n),
                              results.summaries[n].accuracy), textcoords="offset points",
                              xytext=(4, -10), fontsize=7, color=colour)
        for label, marker, names in (
                ("retrace", "^", [n for n, c in parsed.items()
                                  if c.search == RETRACE and c.selector == selector]),
                ("budgeted", "D", [n for n, c in parsed.items()
                                   if c.search != RETRACE and not c.fixed
                                   and c.selector == selector])):
            if names:
                errorbar(names, fmt=marker, color=colour, markersize=8,
                         label=f"{label}, {selector}")
                for n in names if label == "retrace" else ():  # the legend names the rest
                    axes.annotate(n, (results.tokens(n), results.summaries[n].accuracy),
                                  textcoords="offset points", xytext=(4, 4), fontsize=7,
                                  color=colour)
    if "greedy" in results.summaries:
        g = results.summaries["greedy"]
        axes.axhline(g.accuracy, color="black", linestyle="--", linewidth=1,
                     label=f"greedy ({g.accuracy:.1%}, {g.completion_tokens:.0f} tokens)")
        axes.axhspan(g.ci_low, g.ci_high, color="black", alpha=0.07)
        axes.plot([g.completion_tokens], [g.accuracy], marker="*", color="black", markersize=10,
                  linestyle="none")
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("generated tokens per question (log scale); ×w: stage width, N: best-of-N")
    axes.set_ylabel("accuracy (95 % interval)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
