"""The Markdown report from hand-written answers: its sections, the reproduce command, the
auto table, and the hand-written notes that survive regeneration."""

from pathlib import Path

from evaluation.analysis import analyse
from evaluation.configs import DEFAULT_CONFIGS
from evaluation.notes import NOTES_MARKER, keep_notes
from evaluation.report import (
    RunInfo,
    configs_option,
    gap_closed,
    markdown,
    reproduce_command,
)
from evaluation.targets import targets
from tests.unit.evaluation.fakes import answer, answers

INFO = RunInfo(split="test", dataset_split="held-out", seed=3, model="tiny-cot",
               base_url="http://127.0.0.1:8000", concurrency=8, out="docs/evaluation.md",
               answers_file="evaluation.test.answers.jsonl", configs="greedy,stage-auto-4")


def _auto(i: int) -> object:
    return answer("stage-auto-4", i, True, trace=[
        {"tag": "CAPTION", "by": "agree" if i % 2 else "verify", "chosen": 0,
         "right": [True, True] if i % 2 else [True, False], "pairs": []},
        {"tag": "CONCLUSION", "by": "vote", "chosen": 1, "right": [True, False, False],
         "pairs": []}])


def test_the_report_has_every_section():
    results = analyse(answers("greedy", range(2), n=4) + [_auto(i) for i in range(4)])
    text = markdown(results, targets(results), INFO, "evaluation.png")
    assert text.startswith("# Does the search pay?")
    assert ("    python -m evaluation --base-url http://127.0.0.1:8000 --model tiny-cot --split "
            "test --questions 4 --seed 3 --concurrency 8 --out docs/evaluation.md --configs "
            "greedy,stage-auto-4") in text
    assert "| greedy | 4 | 50.0% |" in text and "| stage-auto-4 | 4 | 100.0% |" in text
    assert "![accuracy against generated tokens per question](evaluation.png)" in text
    # CAPTION: 2 decisive (verify kept the right one), CONCLUSION: 4 decisive, all lost
    assert "| stage-auto-4 | 100.0% (2/2) | 0.0% (0/4) | 33.3% (2/6) | – |" in text
    assert "| stage-auto-4 | agree 2, verify 2 | vote 4 | verify 100.0% (2/2), vote 0.0% (0/4) |" \
        in text
    assert "| stage-auto-4 | greedy | stage search against no search | 4 |" in text
    assert "## Targets" in text and "**missed** — best stage configuration" in text
    assert "**not measured** — the verifier's accuracy" in text


def test_the_reproduce_command_names_configs_only_when_not_the_default_set():
    assert configs_option([c.name for c in DEFAULT_CONFIGS]) == ""
    assert configs_option(["greedy", "bon-vote-2"]) == "greedy,bon-vote-2"
    command = reproduce_command(RunInfo(**{**INFO.__dict__, "configs": "", "split":
                                           "validation"}), 200)
    assert command.endswith("--split validation --questions 200 --seed 3 --concurrency 8 "
                            "--out docs/evaluation.md")


def test_hand_written_notes_survive_regeneration(tmp_path: Path):
    out = tmp_path / "evaluation.md"
    assert keep_notes(out) == NOTES_MARKER + "\n"
    out.write_text(f"# old table\n{NOTES_MARKER}\nThe judge is weak.\n")
    assert keep_notes(out) == f"{NOTES_MARKER}\nThe judge is weak.\n"


def test_the_retrace_table_counts_retraces_and_splits_the_accuracy():
    from dataclasses import replace

    went = [["REASONING", 0.3], ["CAPTION", 0.2]]
    rows = [replace(answer("retrace-verify-4", i, i != 0), retraces=went if i < 2 else [])
            for i in range(4)]
    results = analyse(answers("greedy", range(2), n=4) + rows)
    text = markdown(results, targets(results), INFO, "evaluation.png")
    assert "### How `retrace` went back" in text
    assert ("| retrace-verify-4 | 2 of 4 | CAPTION 2, REASONING 2 | 50.0% (2) | 100.0% (2) |"
            in text)
    no_retrace = analyse(answers("greedy", range(2), n=4))
    assert "How `retrace`" not in markdown(no_retrace, targets(no_retrace), INFO, "e.png")


def test_the_kind_table_counts_right_answers_per_question_kind():
    from dataclasses import replace

    questions = ["How many red shapes are there?", "Is the red circle left of the blue square?",
                 "Is the red square left of the blue circle?", "What is this?"]
    rows = [replace(answer(config, i, correct), question=questions[i])
            for config, right in (("greedy", {0}), ("stage-verify-4", {0, 1, 2}))
            for i in range(4) for correct in [i in right]]
    text = markdown(analyse(rows), [], INFO, "evaluation.png")
    assert "| kind | greedy | stage-verify-4 |" in text
    assert "| count_colour | 100.0% (1/1) | 100.0% (1/1) |" in text
    assert "| left_of | 0.0% (0/2) | 100.0% (2/2) |" in text
    assert "| other | 0.0% (0/1) | 0.0% (0/1) |" in text
    assert "| count_kind |" not in text  # no such question asked


def test_headroom_is_the_distance_from_greedy_to_the_best_of_4_oracle():
    """Greedy right on 60 of 100; best-of-4 with a right chain among its four on 80 (its oracle,
    from the trace's marks) and right itself on 70: it covers half the distance."""
    def chains(i: int) -> list[dict]:
        return [{"tag": "chains", "by": "vote", "chosen": 0,
                 "right": [i < 70, i < 80, False, False], "pairs": []}]

    results = analyse(answers("greedy", range(60))
                      + [answer("bon-vote-4", i, i < 70, trace=chains(i)) for i in range(100)]
                      + answers("stage-vote-4", range(55)))
    assert results.headroom() == (0.6, 0.8)
    assert gap_closed(0.7, results.headroom()) == "50%"
    assert gap_closed(0.55, results.headroom()) == "-25%"
    assert gap_closed(0.7, None) == "–" and gap_closed(0.7, (0.8, 0.8)) == "–"
    assert analyse(answers("greedy", range(60))).headroom() is None  # no best-of-4 run
    text = markdown(results, targets(results), INFO, "p.png")
    assert "60.0% to 80.0%" in text and "| bon-vote-4 | 100 | 70.0% |" in text
