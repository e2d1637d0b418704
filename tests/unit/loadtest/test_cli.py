"""The command line and the run settings it builds."""

import argparse

import pytest

from loadtest.cli import build_parser, config_from_args
from loadtest.config import DEFAULT_REQUESTS, Level, LoadConfig
from loadtest.workload import procedural_items


def test_every_option_is_explained_in_help() -> None:
    parser = build_parser()
    options = [a for a in parser._actions if a.option_strings]
    assert len(options) > 15
    assert all(a.help and a.help != argparse.SUPPRESS for a in options)


def test_sweep_and_request_options_reach_the_config() -> None:
    args = build_parser().parse_args([
        "--base-url", "http://h:1/v1", "--model", "m", "--concurrency", "1,8,32",
        "--extra-body", '{"beam_width": 4}', "--no-stream", "--slo-ttft", "0.5",
        "--max-tokens", "16", "--requests", "6"])
    config = config_from_args(args)
    assert config.levels == [Level("closed", 1), Level("closed", 8), Level("closed", 32)]
    assert config.slo.ttft_s == 0.5 and config.slo.latency_s is None
    assert config.chat_url == "http://h:1/v1/chat/completions"
    body = config.request_body(procedural_items(1)[0])
    assert body["beam_width"] == 4 and body["max_tokens"] == 16 and body["stream"] is False
    assert "stream_options" not in body


def test_rate_option_makes_an_open_loop_and_cannot_mix_with_concurrency() -> None:
    parser = build_parser()
    args = parser.parse_args(["--base-url", "http://h:1", "--model", "m", "--rate", "2,4.5"])
    config = config_from_args(args)
    assert [lv.label for lv in config.levels] == ["rate=2/s", "rate=4.5/s"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--base-url", "u", "--model", "m", "--rate", "2",
                           "--concurrency", "4"])


def test_bad_extra_body_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--base-url", "u", "--model", "m", "--extra-body", "[1]"])


def test_streaming_body_asks_for_usage_and_extra_fields_win() -> None:
    config = LoadConfig(base_url="http://h:1/", model="m",
                        extra_body={"max_tokens": 3, "return_trace": True})
    body = config.request_body(procedural_items(1)[0])
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 3 and body["return_trace"] is True
    assert config.chat_url == "http://h:1/v1/chat/completions"


def test_a_run_is_always_bounded() -> None:
    assert LoadConfig(base_url="u", model="m").request_bound == DEFAULT_REQUESTS
    assert LoadConfig(base_url="u", model="m", duration_s=5).request_bound is None
    with pytest.raises(ValueError):
        LoadConfig(base_url="u", model="m", duration_s=0)
