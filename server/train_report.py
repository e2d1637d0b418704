"""The tiny model's training report: `python -m server.train_report MODEL_DIR --out FILE.md`
reads MODEL_DIR/training_curve.json (written by `server.train_tiny`) and writes a Markdown page
with the run's figures, the loss per tenth of the run, the held-out check, and a plot of the
training curve beside it (same name, .png)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

KINDS = ("answer", "judge")


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
        f"`python -m server.train_tiny` (`make tiny-model`), seed {record['seed']}: "
        f"{record['steps']} steps of {record['batch']} examples in "
        f"{record['seconds'] / 60:.1f} minutes on the CPU, {record['parameters'] / 1e6:.2f} M "
        "parameters. Answer batches teach the four-stage answers; judge batches teach the "
        "one-token verdict between two candidates.", "",
        f"![training curve]({plot_name})", "",
        "| steps | answer loss | judge loss |", "|---|---|---|",
    ]
    for row in record["summary"]:
        cells = [f"{row[k]:.3f}" if row.get(k) is not None else "–" for k in KINDS]
        lines.append(f"| {row['steps']} | {cells[0]} | {cells[1]} |")
    if check:
        lines += ["", f"Held-out check after training ({check['questions']} questions, "
                  "transformers, greedy):", "",
                  f"- well-formed four-stage answers: {check['well_formed']:.0%}",
                  f"- right answers: {check['greedy_accuracy']:.1%} ("
                  + ", ".join(f"{k} {v:.0%}" for k, v in check["accuracy_by_kind"].items())
                  + ")",
                  f"- judge picks the right one of a right and a wrong candidate: "
                  f"{check['judge_accuracy']:.1%} (50 % is a coin)"]
    return "\n".join(lines) + "\n"


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
    parser = argparse.ArgumentParser(prog="python -m server.train_report", description=__doc__,
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
