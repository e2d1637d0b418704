"""Does a summariser pay? Insight-V's reasoner + summariser against the reasoner alone, on the
held-out shape questions, with `python -m evaluation.compare`.

  reason+summarize  cot-server's reason_summarize pipeline: the stage search writes the chain,
                    then the summariser call (the same model in its second role) reads the
                    question, the image and the chain, and answers
  reasoner          the same search on the same server, its own CONCLUSION scored

Both systems are the same server (started here on a free port) with the same search settings
(`--beam-width`, `--selector`; greedy by default) and each question's seed, so each question's
chain is the same in both and only the summariser differs. The comparison's outputs
(report.md, report.html, summary.json, predictions.jsonl) go to --out; run it again to carry
on.

    python -m evaluation.compare.summarize --questions 500 --out docs/comparison-summarize
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from evaluation.compare import run
from evaluation.compare.direct import MODEL_NAME, add_run_options, ours, run_argv
from evaluation.compare.summary import Comparison


def search_fields(beam_width: int, selector: str) -> dict[str, Any]:
    """The reasoner's search, the same for both systems (each question's seed is too)."""
    fields: dict[str, Any] = {"beam_width": beam_width, "return_trace": True}
    if beam_width == 1:
        fields["temperature"] = 0
    else:
        fields["selector"] = selector
    return fields


def compare_argv(args: argparse.Namespace, url: str) -> list[str]:
    fields = search_fields(args.beam_width, args.selector)
    return ["--dataset", f"shapes:test:{args.questions}",
            "--a", url, "--a-name", "reason+summarize", "--a-model", MODEL_NAME,
            "--a-fields", json.dumps({**fields, "pipeline": "reason_summarize"}),
            "--b", url, "--b-name", "reasoner", "--b-model", MODEL_NAME,
            "--b-fields", json.dumps({**fields, "pipeline": "search"}), *run_argv(args)]


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(prog="python -m evaluation.compare.summarize",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="models/tiny-cot",
                        help="the model's folder (default: %(default)s)")
    parser.add_argument("--beam-width", type=int, default=1,
                        help="the reasoner's search width (default: %(default)s, greedy)")
    parser.add_argument("--selector", default="verify",
                        help="the reasoner's selector when --beam-width > 1 "
                             "(default: %(default)s)")
    add_run_options(parser, "docs/comparison-summarize")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="compare-summarize-"))
    print(f"server log: {logs}")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    server = ours(args.model_dir, logs)
    try:
        return run.main(compare_argv(args, server.base_url))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
