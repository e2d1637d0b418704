"""Configuration names, the default set and `--configs` selection (globs included)."""

import pytest

from evaluation.configs import DEFAULT_CONFIGS, Config, ordered, parse, select


def names(configs):
    return [c.name for c in configs]


def test_the_default_set():
    all_names = names(DEFAULT_CONFIGS)
    assert len(all_names) == len(set(all_names)) == 1 + 4 + 6 * 3 + 2
    assert all_names[-2:] == ["retrace-verify-4", "effort-medium-verify"]
    assert all_names[:5] == ["greedy", "bon-judge-4", "bon-verify-4", "bon-vote-4",
                             "bon-weighted_vote-4"]
    assert {"stage-judge-2", "stage-verify-4", "stage-logprob-8", "stage-auto-4",
            "stage-weighted_vote-8"} <= set(all_names)


def test_names_parse_to_request_fields():
    assert parse("greedy").request_fields() == {"beam_width": 1}
    assert parse("bon-vote-4").request_fields() == {"beam_width": 4, "selector": "vote",
                                                    "search": "best_of_n",
                                                    "greedy_candidate": False}
    assert parse("stage-weighted_vote-8").request_fields() == {
        "beam_width": 8, "selector": "weighted_vote", "search": "stage",
        "greedy_candidate": False}
    assert parse("stage-judge-16") == Config("stage", "judge", 16)
    for bad in ("bon-best-4", "stage-judge-1", "stage-judge-17", "judge-4", "stage-judge-x",
                "retrace-judge-4", "stage-verify-4-t0", "effort-huge-verify",
                "effort-high-best", "stage-verify-4-g-t100", "effort-medium-verify-g"):
        with pytest.raises(ValueError):
            parse(bad)


def test_retrace_budget_and_effort_names_parse_to_request_fields():
    assert parse("retrace-verify-4").request_fields() == {"beam_width": 4, "selector": "verify",
                                                          "search": "retrace",
                                                          "greedy_candidate": False}
    budgeted = parse("stage-verify-8-t200")
    assert budgeted.request_fields() == {"beam_width": 8, "selector": "verify",
                                         "search": "stage", "search_budget": 200,
                                         "greedy_candidate": False}
    assert budgeted.name == "stage-verify-8-t200" and not budgeted.fixed
    effort = parse("effort-medium-vote")
    assert effort.request_fields() == {"reasoning_effort": "medium", "selector": "vote"}
    assert effort.name == "effort-medium-vote" and not effort.fixed
    assert parse("retrace-verify-4").fixed


def test_a_greedy_candidate_suffix():
    config = parse("stage-verify-4-t300-g")
    assert config == Config("stage", "verify", 4, 300, greedy=True)
    assert config.name == "stage-verify-4-t300-g"
    assert config.request_fields() == {"beam_width": 4, "selector": "verify", "search": "stage",
                                       "search_budget": 300, "greedy_candidate": True}
    assert parse("bon-vote-4-g").fixed and parse("bon-vote-4-g").name == "bon-vote-4-g"
    assert ordered(["stage-verify-4-g", "stage-verify-4", "greedy"]) == [
        "greedy", "stage-verify-4", "stage-verify-4-g"]


def test_configs_are_selected_by_names_and_globs():
    assert select("") == list(DEFAULT_CONFIGS)
    assert names(select("stage-*-4")) == [f"stage-{s}-4" for s in (
        "judge", "verify", "vote", "weighted_vote", "logprob", "auto")]
    assert names(select("greedy, bon-*")) == ["greedy", "bon-judge-4", "bon-verify-4",
                                              "bon-vote-4", "bon-weighted_vote-4"]
    assert names(select("*verify-?")) == ["bon-verify-4", "stage-verify-2", "stage-verify-4",
                                          "stage-verify-8", "retrace-verify-4"]
    # a plain name outside the default set, the given order kept, no repeats
    assert names(select("bon-vote-2,greedy,stage-verify-2,greedy,stage-verify-[2]")) == [
        "bon-vote-2", "greedy", "stage-verify-2"]
    with pytest.raises(ValueError, match="matches no configuration"):
        select("beam-*")
    with pytest.raises(ValueError):
        select("greedy,nonsense")


def test_report_order():
    assert ordered({"stage-vote-2", "greedy", "x", "bon-judge-4", "stage-judge-8",
                    "stage-judge-2"}) == ["greedy", "bon-judge-4", "stage-judge-2",
                                          "stage-judge-8", "stage-vote-2", "x"]
