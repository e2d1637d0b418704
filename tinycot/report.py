"""The tiny model's training report: `python -m tinycot.report MODEL_DIR --out FILE.md`
reads MODEL_DIR/training_curve.json (written by `tinycot.train`) and writes a Markdown page
with the run's figures, the loss per tenth of the run, the held-out check, and a plot of the
training curve beside it (same name, .png)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tinycot.train import KINDS


def smoothed(curve: list[dict[str, Any]], kind: str, window: int = 25
             ) -> tuple[list[int], list[float]]:
    """(step, mean loss of this kind's last `window` batches) for each batch of the kind."""
    steps, losses, out = [], [], []
    for row in curve:
        if row["kind"] == kind:
            losses.append(row["loss"])
            steps.append(row["step"])
            recent = losses[-window:]
            out.append(sum(recent) / len(recent))
    return steps, out


def markdown(record: dict[str, Any], plot_name: str) -> str:
    check = record.get("check") or {}
    lines = [
        "# Training the tiny model", "",
        f"`python -m tinycot.train` (`make tiny-model`), seed {record['seed']}: "
        f"{record['steps']} steps of {record['batch']} examples in "
        f"{record['seconds'] / 60:.1f} minutes on the CPU, {record['parameters'] / 1e6:.2f} M "
        "parameters. Answer batches teach the four-stage answers; judge batches teach the "
        "one-token verdict between two candidates; verify batches teach the one-token yes or "
        "no on whether one candidate stage is correct; summary batches teach the summariser's "
        "answer after a whole chain, right or wrong on purpose.", "",
    ]
    if record.get("init"):
        shares = record.get("shares") or {}
        lines += [f"This run started from an earlier trained model (`--init`, {record['init']}) "
                  "and went on with its tokenizer, at peak learning rate "
                  f"{record.get('peak_lr')} and batch shares {shares}. The losses are means "
                  "over the target's tokens: where the tokenizer splits a target (`yes` as "
                  "`y` + `es`), the second token is near certain and a coin on the first "
                  "shows as about ln 2 / 2 = 0.35.", ""]
    onpolicy = (record.get("onpolicy") or {}).get("candidates") or {}
    if onpolicy:
        files = ", ".join(f"`{f}`" for f in record["onpolicy"]["files"])
        lines += [f"Verify examples drew on {sum(onpolicy.values())} distinct candidates the "
                  f"model had sampled ({files}; " + ", ".join(
                      f"{k} {v}" for k, v in onpolicy.items()) + ").", ""]
    ranking = any("ranking" in row for row in record["summary"])
    if ranking:
        lines += [f"Pair batches also carried a pairwise (Bradley-Terry) loss at weight "
                  f"{record.get('ranking')} (`--ranking`): -log sigmoid of the right "
                  "candidate's yes-no logit margin minus the wrong one's, at the verdict's "
                  "position; *pairs ranked right* is the share of a batch's pairs where the "
                  "right one's margin was higher (during training).", ""]
    if (record.get("onpolicy") or {}).get("outcome_labels"):
        lines += ["Its on-policy REASONING candidates were labelled by the result they reach "
                  "(`--outcome-labels`: a reasoning that miscounts its way to the right number "
                  "is right), the other stages by their text.", ""]
    columns = [*KINDS, *(("ranking", "ranked_right") if ranking else ())]
    names = {"ranking": "ranking loss", "ranked_right": "pairs ranked right"}
    lines += [f"![training curve]({plot_name})", "",
              "| steps | " + " | ".join(names.get(k, f"{k} loss") for k in columns) + " |",
              "|---" * (len(columns) + 1) + "|"]
    for row in record["summary"]:
        cells = [(f"{row[k]:.1%}" if k == "ranked_right" else f"{row[k]:.3f}")
                 if row.get(k) is not None else "–" for k in columns]
        lines.append(f"| {row['steps']} | {' | '.join(cells)} |")
    if check:
        lines += ["", f"Held-out check after training ({check['questions']} questions, "
                  "transformers, greedy):", "",
                  f"- well-formed four-stage answers: {check['well_formed']:.0%}"
                  + (" (" + ", ".join(f"{k} {v:.0%}" for k, v in
                                      check["well_formed_by_kind"].items()) + ")"
                     if check.get("well_formed_by_kind") else ""),
                  f"- right answers: {check['greedy_accuracy']:.1%} ("
                  + ", ".join(f"{k} {v:.0%}" for k, v in check["accuracy_by_kind"].items())
                  + ")",
                  f"- judge picks the right one of a right and a wrong candidate: "
                  f"{check['judge_accuracy']:.1%} (50 % is a coin)"]
        lines += verify_lines(check)
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def verify_lines(check: dict[str, Any]) -> list[str]:
    """The verifier's held-out figures: verdicts on written and on sampled candidates, the
    decisive pick and the verify search's accuracy."""
    lines: list[str] = []
    written = check.get("verify_written")
    if written:
        lines += ["", f"Verifier (P(yes) > P(no) against the label), {written['items']} written "
                  f"held-out candidates: {written['accuracy']:.1%} right.", "",
                  "| written candidates | n | right ones | accuracy | yes when right | "
                  "no when wrong |", "|---|---|---|---|---|---|"]
        for part in ("by_stage", "by_source"):
            for group, row in written[part].items():
                if group != "all":
                    lines.append(f"| {group} | {row['n']} | {_pct(row['right_share'])} | "
                                 f"{_pct(row['accuracy'])} | {_pct(row['yes_when_right'])} | "
                                 f"{_pct(row['no_when_wrong'])} |")
    search = check.get("verify_search")
    if search:
        pick = search["decisive_pick"]
        lines += ["", f"Stage-level search with the verifier on {search['questions']} held-out "
                  f"questions ({search['width']} candidates a stage sampled at temperature "
                  f"{search['temperature']}, the highest P(yes) kept): "
                  f"{_pct(search['accuracy'])} right answers (greedy above: "
                  f"{check['greedy_accuracy']:.0%} of {check['questions']}). Where some but "
                  f"not all of a stage's candidates were right ({pick['all']['stages']} "
                  f"stages), the kept one was right {_pct(pick['all']['picked_right'])} of the "
                  f"time; a random pick would be {_pct(pick['all']['random_pick'])}.", "",
                  "| sampled candidates | n | right ones | verdict accuracy | yes when right "
                  "| no when wrong | decisive stages | kept right | random pick |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for group, row in search["verdicts"].items():
            if group == "all":
                continue
            decisive = pick.get(group) or {}
            lines.append(f"| {group} | {row['n']} | {_pct(row['right_share'])} | "
                         f"{_pct(row['accuracy'])} | {_pct(row['yes_when_right'])} | "
                         f"{_pct(row['no_when_wrong'])} | {decisive.get('stages', 0)} | "
                         f"{_pct(decisive.get('picked_right'))} | "
                         f"{_pct(decisive.get('random_pick'))} |")
    return lines


def plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for kind in KINDS:
        steps, losses = smoothed(record["curve"], kind)
        if steps:
            axes.plot(steps, losses, label=f"{kind} batches")
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (mean of the last 25 batches)")
    axes.set_title("Tiny model training")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tinycot report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--out", default="docs/training.md")
    args = parser.parse_args(argv)
    record = json.loads((Path(args.model_dir) / "training_curve.json").read_text())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    plot(record, png)
    out.write_text(markdown(record, png.name))
    print(f"wrote {out}, {png}")


if __name__ == "__main__":
    main()
