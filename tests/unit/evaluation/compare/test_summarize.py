"""The reasoner + summariser comparison's arguments (pure: no server is started)."""

import argparse

from evaluation.compare import run
from evaluation.compare.summarize import compare_argv


def args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"questions": 20, "beam_width": 1, "selector": "verify",
                                 "out": "out", "concurrency": 4, "no_progress": True, **kw})


def test_both_systems_ask_one_server_the_same_search_and_differ_in_the_pipeline_only():
    parsed = run.parse_args(compare_argv(args(), "http://127.0.0.1:9"))
    assert parsed.a == parsed.b == "http://127.0.0.1:9"
    assert parsed.dataset == "shapes:test:20" and not parsed.no_seed  # per-question seeds
    assert parsed.a_fields.pop("pipeline") == "reason_summarize"
    assert parsed.b_fields.pop("pipeline") == "search"
    assert parsed.a_fields == parsed.b_fields == {"beam_width": 1, "return_trace": True,
                                                  "temperature": 0}
    assert (parsed.a_name, parsed.b_name) == ("reason+summarize", "reasoner")


def test_a_wider_search_names_its_selector_and_samples():
    parsed = run.parse_args(compare_argv(args(beam_width=4), "http://h:1"))
    assert parsed.a_fields == {"beam_width": 4, "return_trace": True, "selector": "verify",
                               "pipeline": "reason_summarize"}
