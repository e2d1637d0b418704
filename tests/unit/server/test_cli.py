"""The `serve` command line: the server's flags and vLLM's own engine flags on one parser, and
the engine arguments they turn into. vLLM's parser and AsyncEngineArgs are the real ones (these
tests import vLLM); no engine is started."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from server.cli import build_parser, settings_from
from server.config import Settings
from server.engine import default_engine_options, engine_args


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def serve_settings(parser: argparse.ArgumentParser, *argv: str) -> Settings:
    return settings_from(parser.parse_args(["serve", *argv]))


def serve_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve: argparse.ArgumentParser = commands.choices["serve"]
    return serve


def test_vllm_flags_reach_the_engine_args_as_vllm_serve_parses_them(parser):
    settings = serve_settings(
        parser, "--kv-cache-dtype", "fp8", "--quantization", "fp8",
        "--mm-processor-kwargs", json.dumps({"max_pixels": 1003520}),
        "--max-num-batched-tokens", "4k", "--revision", "main",
        "--pipeline-parallel-size", "2", "--data-parallel-size", "2", "--port", "9100")
    args = engine_args(settings, on_cpu=True)
    assert (args.kv_cache_dtype, args.quantization) == ("fp8", "fp8")
    assert args.mm_processor_kwargs == {"max_pixels": 1003520}
    assert args.max_num_batched_tokens == 4000  # vLLM's human-readable integers
    assert (args.revision, args.pipeline_parallel_size, args.data_parallel_size) == ("main", 2, 2)
    assert settings.port == 9100 and "port" not in settings.engine


def test_only_the_engine_flags_given_are_kept(parser):
    assert serve_settings(parser).engine == {}
    assert serve_settings(parser, "--max-model-len", "2048", "--beam-width", "2").engine == {
        "max_model_len": 2048}


def test_cpu_and_gpu_defaults_are_decided_by_one_pure_function():
    cpu, gpu = default_engine_options(on_cpu=True), default_engine_options(on_cpu=False)
    assert cpu["enable_prefix_caching"] is gpu["enable_prefix_caching"] is True
    assert cpu["gpu_memory_utilization"] == 0.3 and cpu["enforce_eager"] is True
    assert cpu["block_size"] == 32 and cpu["max_num_seqs"] == 64
    assert not {"gpu_memory_utilization", "enforce_eager", "block_size", "max_num_seqs"} & set(gpu)


def test_on_a_gpu_vllms_defaults_apply_and_on_the_cpu_ours(parser):
    from vllm.engine.arg_utils import AsyncEngineArgs

    vllm_defaults = AsyncEngineArgs(model="m")
    settings = serve_settings(parser)
    gpu, cpu = engine_args(settings, on_cpu=False), engine_args(settings, on_cpu=True)
    for name in ("gpu_memory_utilization", "enforce_eager", "block_size", "max_num_seqs"):
        assert getattr(gpu, name) == getattr(vllm_defaults, name), name
    assert (cpu.gpu_memory_utilization, cpu.enforce_eager, cpu.block_size, cpu.max_num_seqs) \
        == (0.3, True, 32, 64)
    assert gpu.enable_prefix_caching is cpu.enable_prefix_caching is True


def test_an_explicit_flag_beats_the_cpu_default_even_when_it_equals_vllms(parser):
    settings = serve_settings(parser, "--no-enforce-eager", "--gpu-memory-utilization", "0.92",
                              "--no-enable-prefix-caching", "--block-size", "16")
    args = engine_args(settings, on_cpu=True)
    assert args.enforce_eager is False and args.gpu_memory_utilization == 0.92
    assert args.enable_prefix_caching is False and args.block_size == 16


def test_the_image_limit_is_vllms_limit_mm_per_prompt(parser):
    assert serve_settings(parser).limit_images_per_prompt == 4
    settings = serve_settings(parser, "--limit-mm-per-prompt", '{"image": 2, "video": 0}')
    assert settings.limit_images_per_prompt == 2
    assert engine_args(settings, on_cpu=True).limit_mm_per_prompt == {"image": 2, "video": 0}
    options = serve_settings(parser, "--limit-mm-per-prompt", '{"image": {"count": 1}}')
    assert options.limit_images_per_prompt == 1
    assert engine_args(serve_settings(parser, "--limit-mm-per-prompt", '{"video": 1}'),
                       on_cpu=False).limit_mm_per_prompt == {"image": 4, "video": 1}


def test_trust_remote_code_is_vllms_flag_read_by_the_server_too(parser):
    settings = serve_settings(parser, "--trust-remote-code")
    assert settings.trust_remote_code and engine_args(settings, on_cpu=True).trust_remote_code


def test_the_default_served_name_is_the_model_as_given(parser):
    settings = serve_settings(parser, "--model", "org/some-vlm")
    assert settings.model_name == "org/some-vlm" and settings.served_names == ("org/some-vlm",)
    assert engine_args(settings, on_cpu=False).served_model_name == ["org/some-vlm"]


def test_several_served_names_are_aliases_and_the_first_is_reported(parser):
    settings = serve_settings(parser, "--model", "models/tiny-cot",
                              "--served-model-name", "tiny-cot", "cot-alias")
    assert settings.model_name == "tiny-cot"
    assert settings.served_names == ("tiny-cot", "cot-alias")
    assert "models/tiny-cot" not in settings.served_names  # named: the path is no alias
    assert engine_args(settings, on_cpu=True).served_model_name == ["tiny-cot", "cot-alias"]


def test_our_flags_replace_exactly_the_vllm_flags_the_server_reads_itself(parser):
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    vllm_flags = {s for a in AsyncEngineArgs.add_cli_args(FlexibleArgumentParser())._actions
                  for s in a.option_strings}
    ours = {"--" + name.replace("_", "-") for name in Settings.flag_fields()}
    assert ours & vllm_flags == {"--model", "--served-model-name", "--log-level"}
    serve = serve_parser(parser)
    owners = {s: a for a in serve._actions for s in a.option_strings}
    assert owners["--model"].default is argparse.SUPPRESS and owners["--model"].help
    assert "COT_SERVER_MODEL" in owners["--model"].help  # ours, not vLLM's
    assert (vllm_flags - {"-h", "--help"}) <= set(owners)  # every other vLLM flag is there


def test_the_log_level_reaches_vllm_only_when_given(parser):
    assert engine_args(serve_settings(parser), on_cpu=True).log_level is None
    assert engine_args(serve_settings(parser, "--log-level", "debug"),
                       on_cpu=True).log_level == "DEBUG"


def test_serve_help_lists_our_group_and_vllms_groups(parser):
    text = serve_parser(parser).format_help()
    assert "cot-server:" in text and "COT_SERVER_BEAM_WIDTH" in text
    for group in ("ModelConfig:", "CacheConfig:", "ParallelConfig:", "SchedulerConfig:",
                  "MultiModalConfig:"):
        assert group in text
    for flag in ("--beam-width", "--stage-schema", "--kv-cache-dtype", "--quantization",
                 "--max-num-batched-tokens", "--mm-processor-kwargs"):
        assert flag in text
    assert text.index("cot-server:") < text.index("ModelConfig:")
    assert "SUPPRESS" not in text


def test_environment_variables_set_our_flags_and_flags_beat_them(monkeypatch, parser):
    monkeypatch.setenv("COT_SERVER_STAGE_MAX_TOKENS", "32")
    monkeypatch.setenv("COT_SERVER_SERVED_MODEL_NAME", "tiny-cot, cot-alias")
    monkeypatch.setenv("COT_SERVER_BEAM_WIDTH", "2")
    settings = serve_settings(parser, "--beam-width", "3")
    assert settings.stage_max_tokens == 32 and settings.beam_width == 3
    assert settings.served_names == ("tiny-cot", "cot-alias")


def test_engine_options_have_no_environment_variable(monkeypatch, parser):
    monkeypatch.setenv("COT_SERVER_ENGINE", '{"enforce_eager": false}')
    assert serve_settings(parser).engine == {}


def test_engine_options_that_vllm_does_not_know_are_refused():
    with pytest.raises(ValueError, match="max_num_seq"):
        engine_args(Settings(engine={"max_num_seq": 3}), on_cpu=True)


def test_every_engine_option_the_parser_yields_is_an_engine_argument(parser):
    from vllm.engine.arg_utils import AsyncEngineArgs

    fields = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    serve = serve_parser(parser)
    ours = set(Settings.flag_fields())
    dests = {a.dest for a in serve._actions if a.dest not in ours | {"help"}}
    assert dests <= fields, dests - fields


def test_the_otlp_endpoint_is_vllms_flag_read_by_the_server_too(parser):
    settings = serve_settings(parser, "--otlp-traces-endpoint", "http://collector:4317",
                              "--log-format", "json")
    assert settings.otlp_traces_endpoint == "http://collector:4317"
    assert engine_args(settings, on_cpu=True).otlp_traces_endpoint == "http://collector:4317"
    assert settings.log_format == "json"
    assert serve_settings(parser).otlp_traces_endpoint is None
    with pytest.raises(ValueError, match="log_format"):
        serve_settings(parser, "--log-format", "xml")


def test_the_server_runs_with_sigpipe_ignored(monkeypatch):
    """SIGPIPE's default action kills the process without a word: a client that hangs up while
    its stream is being written would take the whole server down (the soak's 'leave' clients).
    Ignored, the write fails with EPIPE, which only that connection sees."""
    import signal

    import server.cli

    seen: list[object] = []
    monkeypatch.setattr(server.cli, "serve", lambda args: seen.append(
        signal.getsignal(signal.SIGPIPE)) or 0)
    before = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        with pytest.raises(SystemExit) as exited:
            server.cli.main(["serve"])
    finally:
        signal.signal(signal.SIGPIPE, before)
    assert exited.value.code == 0 and seen == [signal.SIG_IGN]


def test_a_signal_after_the_engine_died_exits_at_once_and_a_second_one_forcibly():
    import signal

    from server.api.state import Readiness, server_state
    from server.app import create_app
    from server.cli import DrainingServer

    settings = Settings(served_model_name=("fake",))
    running = DrainingServer(create_app(settings), settings)
    server_state(running.app).lifecycle.readiness = Readiness.FAILED  # in its grace period
    running._handle_exit(signal.SIGTERM, None)
    assert running.server.should_exit and not running.server.force_exit
    running._handle_exit(signal.SIGTERM, None)
    assert running.server.force_exit
