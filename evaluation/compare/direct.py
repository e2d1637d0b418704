"""Does reasoning in stages pay? The CoT model's staged answer against the same architecture
trained to answer directly, on the held-out shape questions, with `python -m evaluation.compare`.

  cot     cot-server on the shipped CoT model (greedy: one candidate per stage, temperature 0),
          which writes SUMMARY, CAPTION, REASONING and then the CONCLUSION that is scored
  direct  upstream vLLM's OpenAI server on the shipped direct-answer model (`python -m tinycot
          install --direct`: the same architecture and task, trained with `python -m
          tinycot.train --direct` on the answers alone), asked the question as it is

(`--direct-prompt` asks the CoT model itself for a direct answer instead: upstream vLLM on the
CoT weights with the answer prefilled as `<CONCLUSION>`. It was never trained to skip its
stages and mostly writes them anyway.)

Both servers are started here on free ports, with the same engine settings; the comparison's
outputs (report.md, report.html, summary.json, predictions.jsonl) go to --out. Resumable like
the comparison itself: run it again to carry on.

    python -m evaluation.compare.direct --questions 500 --out docs/comparison
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from evaluation.compare import run
from evaluation.compare.summary import Comparison
from loadtest.servers import ServerProcess, launch

MODEL_NAME, DIRECT_NAME = "tiny-cot", "tiny-direct"
ENGINE_ARGS = ["--max-model-len", "2048", "--gpu-memory-utilization", "0.3"]
COT_FIELDS = {"beam_width": 1, "temperature": 0, "return_trace": True}
DIRECT_FIELDS = {"temperature": 0, "max_tokens": 32, "stop": ["</CONCLUSION>"]}
PREFILL = "<CONCLUSION>"  # --direct-prompt


def ours(model_dir: str, logs: Path) -> ServerProcess:
    return launch(["-m", "server", "serve", "--model", model_dir, "--served-model-name",
                   MODEL_NAME, *ENGINE_ARGS], logs / "cot-server.log", MODEL_NAME)


def upstream(model_dir: str, name: str, logs: Path) -> ServerProcess:
    return launch(["-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
                   "--served-model-name", name, "--enforce-eager", *ENGINE_ARGS],
                  logs / "vllm.log", name, ready_path="/health")


def add_run_options(parser: argparse.ArgumentParser, out: str) -> None:
    """The options every comparison script shares: the questions (its --dataset) and how the
    comparison runs (`run_argv`)."""
    parser.add_argument("--questions", type=int, default=500,
                        help="held-out questions 0..N-1 (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="requests in flight (default: %(default)s)")
    parser.add_argument("--out", default=out,
                        help="the comparison's folder (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_argv(args: argparse.Namespace) -> list[str]:
    """Those options, as the comparison run's arguments."""
    return ["--out", args.out, "--concurrency", str(args.concurrency),
            *(["--no-progress"] if args.no_progress else [])]


def compare_argv(args: argparse.Namespace, cot_url: str, direct_url: str) -> list[str]:
    prompt = ["--b-prefill", PREFILL] if args.direct_prompt else []
    return ["--dataset", f"shapes:test:{args.questions}", "--a", cot_url, "--a-name", "cot",
            "--a-model", MODEL_NAME, "--a-fields", json.dumps(COT_FIELDS),
            "--b", direct_url, "--b-name", "direct-prompt" if args.direct_prompt else "direct",
            "--b-model", MODEL_NAME if args.direct_prompt else DIRECT_NAME,
            "--b-fields", json.dumps(DIRECT_FIELDS), *prompt, *run_argv(args)]


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(prog="python -m evaluation.compare.direct",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="models/tiny-cot",
                        help="the CoT model's folder (default: %(default)s)")
    parser.add_argument("--direct-model-dir", default="models/tiny-direct",
                        help="the direct-answer model's folder, written from the shipped "
                             "weights if missing (default: %(default)s)")
    parser.add_argument("--direct-prompt", action="store_true",
                        help="ask the CoT model for a direct answer (prefilled <CONCLUSION>) "
                             "instead of the direct-answer model")
    add_run_options(parser, "docs/comparison")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="compare-direct-"))
    print(f"server logs: {logs}")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # the same KV cache for both servers
    direct_dir = args.model_dir if args.direct_prompt else args.direct_model_dir
    if not (Path(direct_dir) / "config.json").exists():
        from tinycot.model import DIRECT_MODEL, install_trained_model

        install_trained_model(direct_dir, DIRECT_MODEL)
    cot, direct = ours(args.model_dir, logs), None
    try:
        direct = upstream(direct_dir, MODEL_NAME if args.direct_prompt else DIRECT_NAME, logs)
        return run.main(compare_argv(args, cot.base_url, direct.base_url))
    finally:
        for server in (cot, direct):
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
