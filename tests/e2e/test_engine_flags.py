"""A real server started with vLLM engine flags of `vllm serve` beside our own, and with an alias
among its served names: the flags reach the engine (and ours: the engine core's niceness), and a
request naming the alias is served."""

import signal

import httpx
import psutil
import pytest

from tests.conftest import start_server
from tests.e2e.waiting import engine_core

pytestmark = pytest.mark.e2e
URL = "/v1/chat/completions"
ALIAS = "tiny-alias"
CORE_NICE = 7


PREAMBLE = "{{ 'note ' * 60 }}"  # a chat template that says more than the checkpoint's


@pytest.fixture(scope="module")
def flagged_server(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("engine-flags")
    template = folder / "template.jinja"
    template.write_text(PREAMBLE + (tiny_model_dir / "chat_template.jinja").read_text())
    proc = start_server(folder / "server.log", "--cpu-engine-core-nice", str(CORE_NICE),
                        "--max-num-batched-tokens", "4096", "--kv-cache-dtype", "auto",
                        "--served-model-name", "tiny-cot", ALIAS, "--chat-template", str(template))
    yield proc
    proc.stop(signal.SIGKILL)


def cache_config(server) -> str:
    """vLLM's own report of the cache config the engine runs with (a Prometheus info gauge)."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return next(line for line in text.splitlines() if line.startswith("vllm:cache_config_info"))


def test_the_engine_runs_with_the_flags_given_and_the_cpu_defaults(flagged_server):
    assert "max_num_batched_tokens=4096" in flagged_server.log()  # vLLM's scheduler says so
    info = cache_config(flagged_server)
    assert 'cache_dtype="auto"' in info
    assert 'block_size="32"' in info and 'enable_prefix_caching="True"' in info


def test_the_engine_core_runs_as_vllm_starts_it_unless_a_niceness_is_asked_for(
        server, flagged_server):
    """By default the engine core keeps the niceness it inherits (as under upstream's server);
    --cpu-engine-core-nice N lowers its priority below the API process's."""
    core, api = engine_core(server), psutil.Process(server.process.pid)
    assert core.nice() == api.nice()
    assert "runs at niceness" not in server.log()
    core, api = engine_core(flagged_server), psutil.Process(flagged_server.process.pid)
    assert core.nice() == max(CORE_NICE, api.nice())
    if api.nice() < CORE_NICE:
        assert (f"VLLM::EngineCore (pid {core.pid}) runs at niceness {CORE_NICE}"
                in flagged_server.log())


def test_a_request_naming_an_alias_is_served_and_answered_with_the_first_name(
        flagged_server, chat_body):
    response = httpx.post(f"{flagged_server.base_url}{URL}", json={**chat_body, "model": ALIAS},
                          timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "tiny-cot"
    unknown = httpx.post(f"{flagged_server.base_url}{URL}",
                         json={**chat_body, "model": "models/tiny-cot"}, timeout=60)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_models_lists_every_served_name(flagged_server):
    models = httpx.get(f"{flagged_server.base_url}/v1/models", timeout=10).json()["data"]
    assert [m["id"] for m in models] == ["tiny-cot", ALIAS]
    assert all(m["max_model_len"] == 2048 for m in models)


def test_the_chat_template_flag_replaces_the_checkpoints(flagged_server, server, chat_body):
    def prompt_tokens(base_url: str) -> int:
        data = httpx.post(f"{base_url}{URL}", json=chat_body, timeout=120).json()
        return int(data["usage"]["prompt_tokens"])

    # four stage calls, each prompt 60 words longer
    assert prompt_tokens(flagged_server.base_url) >= prompt_tokens(server.base_url) + 4 * 60
