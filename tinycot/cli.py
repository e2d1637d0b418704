"""`python -m tinycot` (or `cot-tiny-model`): write, build, retrain and report on the tiny
default model. Argument parsing only."""

from __future__ import annotations

import argparse
import sys

from tinycot.architectures import FAMILIES

DEFAULT_DIR = "models/tiny-cot"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tinycot", description="The tiny offline default model: a 2-6 M "
        "parameter Idefics3 VLM that answers questions about pictures of coloured shapes in "
        "the four LLaVA-CoT stages. The server loads it like any checkpoint.")
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="Write the shipped trained weights.",
                                  description="Copy the shipped trained model (package data, "
                                  "about 5 MB) into DIRECTORY.")
    install.add_argument("directory", nargs="?", default=DEFAULT_DIR)
    install.add_argument("--direct", action="store_true",
                         help="the direct-answer baseline instead (the same architecture "
                              "trained to answer without stages)")
    random = commands.add_parser("build-random", help="Build the same kind of model untrained.",
                                 description="Build, deterministically and in seconds, an "
                                 "untrained tiny model (random weights): shows the plumbing.")
    random.add_argument("directory", nargs="?", default=DEFAULT_DIR)
    families = commands.add_parser(
        "architectures", help="Build tiny random checkpoints of deployed VLM architectures.",
        description="Build, offline and deterministically, a tiny random-weights checkpoint "
        "of each VLM family (Qwen2.5-VL, LLaVA-NeXT, LLaVA-OneVision, Gemma 3, InternVL, "
        "Llama 3.2 Vision) into DIRECTORY/<name>; see docs/models.md.")
    families.add_argument("directory")
    families.add_argument("--only", action="append", default=[], choices=sorted(FAMILIES),
                          help="build this family only (repeatable)")
    commands.add_parser("train", help="Retrain from scratch (python -m tinycot.train --help).",
                        add_help=False)
    commands.add_parser("report", help="Write the training report "
                        "(python -m tinycot.report --help).", add_help=False)
    commands.add_parser("readout", help="Whether the model's features tell its right candidates "
                        "from its wrong ones (python -m tinycot.readout --help).", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("train", "report", "readout"):  # their own parsers take the rest
        if argv[0] == "train":
            from tinycot.train import main as train
            train(argv[1:])
        elif argv[0] == "report":
            from tinycot.report import main as report
            report(argv[1:])
        else:
            from tinycot.readout import main as readout
            readout(argv[1:])
        return
    args = build_parser().parse_args(argv)
    if args.command == "architectures":
        from tinycot.architectures import build_families

        for path in build_families(args.directory, args.only):
            print(path)
        return
    from tinycot.model import DIRECT_MODEL, build_random_model, install_trained_model

    if args.command == "build-random":
        print(build_random_model(args.directory))
    else:
        print(install_trained_model(args.directory, DIRECT_MODEL) if args.direct
              else install_trained_model(args.directory))
