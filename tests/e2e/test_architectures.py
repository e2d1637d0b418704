"""The VLM architectures people deploy, through the same code path as the default model: each
family's tiny random checkpoint (`tinycot.architectures`) served by our server on the real vLLM
CPU engine with `--stage-mode prompted`, one server per family. A random model writes noise, so
only the protocol is checked: four stages in order, the answer closed or cut by the budget,
judge and verification options that the engine can tell apart, usage that adds up, the prefix
cache hit during a search, streaming, and a system message kept.

Which family runs here, and why another does not, is declared in EXPECTED, checked against the
installed vLLM when its server would start (a family declared to run here fails rather than
skips), and against the table in docs/models.md."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from loadtest.servers import ServerProcess
from server.search.prompts import JUDGE_OPTIONS, PROMPTED_VERIFY_OPTIONS
from tests.conftest import ROOT, start_server
from tests.e2e.sse import joined, stream_chunks
from tinycot.architectures import FAMILIES, Family

pytestmark = [pytest.mark.e2e, pytest.mark.architectures]
URL = "/v1/chat/completions"
TAGS = ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
STAGE_TOKENS = 8  # a stage's cap: a random model never closes a stage itself

# What a family's row in docs/models.md says of it (the "CPU matrix" column).
RUNS = "runs on CPU"
WITH_TORCHVISION = "runs on CPU where torchvision imports"
LEGACY = "not served by vLLM 0.32"
TORCHVISION_WHY = ("its processor has a video processor, which transformers 5 builds only "
                   "where torchvision imports, and vLLM's own implementation imports a "
                   "torchvision image processor")


@dataclass(frozen=True)
class Expected:
    status: str
    why: str = ""  # why it does not run on every CPU install


EXPECTED = {
    "qwen2_5_vl": Expected(WITH_TORCHVISION, TORCHVISION_WHY),
    "llava_onevision": Expected(WITH_TORCHVISION, TORCHVISION_WHY),
    "llava_next": Expected(RUNS),
    "gemma3": Expected(RUNS),
    "internvl": Expected(WITH_TORCHVISION, TORCHVISION_WHY),
    "mllama": Expected(LEGACY, "vLLM dropped the architecture after 0.10.2"),
}


def _import_error(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # what vLLM itself would meet when it loads the model
        return f"{type(exc).__name__}: {exc}"
    return None


def engine_flags(family: Family) -> list[str]:
    """The engine flags this family runs with here, or a skip with the exact reason. vLLM's
    own implementation where it imports; otherwise vLLM's Transformers backend, which runs the
    same architecture through transformers' modeling code and the same processor (vLLM's
    gemma3_mm and llava_next modules import torchvision image processors at import time)."""
    from vllm.model_executor.models.registry import ModelRegistry

    expected = EXPECTED[family.name]
    if family.architecture not in ModelRegistry.get_supported_archs():
        assert expected.status == LEGACY, f"vLLM does not serve {family.architecture}"
        try:
            ModelRegistry._raise_for_unsupported([family.architecture])
        except ValueError as exc:
            pytest.skip(f"{family.title}: {exc}")
        pytest.skip(f"{family.title}: vLLM does not serve {family.architecture}")
    assert expected.status != LEGACY, f"vLLM serves {family.architecture} now: update EXPECTED"
    module = ModelRegistry.models[family.architecture].module_name
    native = _import_error(module if "." in module else f"vllm.model_executor.models.{module}")
    if native is None:
        return []
    if not family.video_processor:
        return ["--model-impl", "transformers"]
    torchvision = _import_error("torchvision")
    assert expected.status == WITH_TORCHVISION and torchvision, native
    pytest.skip(f"{family.title}: {expected.why}; here vLLM's {module} fails with "
                f"{native!r} and `import torchvision` with {torchvision!r}")


@dataclass
class Served:
    family: Family
    model_dir: Path
    server: ServerProcess


@pytest.fixture(scope="module", params=list(FAMILIES))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    family = FAMILIES[request.param]
    flags = engine_flags(family)
    folder = tmp_path_factory.mktemp(family.name)
    model_dir = family.build(folder / "model")
    server = start_server(folder / "server.log", "--stage-mode", "prompted",
                          "--stage-max-tokens", str(STAGE_TOKENS), *flags,
                          model_dir=model_dir, model_name=family.name)
    yield Served(family, model_dir, server)
    server.stop()


def body(served: Served, image_url: str, **fields) -> dict:
    return {"model": served.family.name, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image_url}},
        {"type": "text", "text": "How many red shapes are there?"}]}],
        "return_trace": True, "seed": 7, **fields}


def post(served: Served, payload: dict) -> dict:
    response = httpx.post(f"{served.server.base_url}{URL}", json=payload, timeout=300)
    assert response.status_code == 200, (response.text, served.server.log_tail())
    return response.json()


def check_answer(data: dict, width: int) -> list[dict]:
    """The protocol every answer keeps; the stages of the trace."""
    choice = data["choices"][0]
    message, stages = choice["message"], choice["message"]["stages"]
    assert [s["tag"] for s in stages] == TAGS
    assert all(len(s["candidates"]) == width or s["fallback"] for s in stages)
    assert message["content"] == stages[-1]["text"]
    reasoning = message["reasoning"]
    assert [m.group(1) for m in re.finditer(r"<([A-Z]+)>", reasoning)] == TAGS
    assert reasoning.endswith("</CONCLUSION>") or choice["finish_reason"] == "length"
    usage = data["usage"]
    judge = usage["completion_tokens_details"]["judge_tokens"]
    candidates = sum(c["tokens"] for s in stages for c in s["candidates"])
    if any(s["fallback"] for s in stages):  # the discarded candidates count too
        assert usage["completion_tokens"] > candidates + judge
    else:
        assert usage["completion_tokens"] == candidates + judge
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["prompt_tokens_details"]["cached_tokens"] < usage["prompt_tokens"]
    return stages


def test_greedy_answer_has_the_four_stages_in_order(served, image_url):
    data = post(served, body(served, image_url, beam_width=1))
    stages = check_answer(data, 1)
    assert all(s["selected_by"] == "only" for s in stages)
    assert data["usage"]["completion_tokens_details"]["judge_tokens"] == 0


def test_beam_of_four_with_the_judge_is_served_from_the_prefix_cache(served, image_url):
    data = post(served, body(served, image_url, beam_width=4, selector="judge"))
    stages = check_answer(data, 4)
    judged = sum(c["confidence"] is not None for s in stages for c in s["comparisons"])
    assert data["usage"]["completion_tokens_details"]["judge_tokens"] == 2 * judged
    for stage in stages:
        usable = [c for c in stage["candidates"] if c["text"]]
        assert len(stage["comparisons"]) == max(len(usable) - 1, 0)
    assert served.server.counter("vllm:prefix_cache_hits_total") > 0


@pytest.mark.parametrize("selector", ["verify", "vote", "weighted_vote", "logprob", "auto"])
def test_each_selector_at_width_two(served, image_url, selector):
    data = post(served, body(served, image_url, beam_width=2, selector=selector))
    stages = check_answer(data, 2)
    judge = data["usage"]["completion_tokens_details"]["judge_tokens"]
    if selector in ("vote", "logprob"):
        assert judge == 0
    for stage in stages:
        scores = [c["score"] for c in stage["candidates"] if c["score"] is not None]
        # P(yes) from both options' logprobs (vLLM's logprob_token_ids), even where "Yes" and
        # "No" are several tokens: a random-weight model is never certain, so never 0 or 1
        assert all(0.0 < s < 1.0 for s in scores), scores
        texts = [c["text"] for c in stage["candidates"] if c["text"]]
        if selector == "verify" and len(texts) > 1:
            assert stage["selected_by"] == "verify"
            assert bool(scores) == (len(set(texts)) > 1)  # the same text: nothing to ask


def test_options_are_told_apart_by_their_first_tokens(served):
    """The engine answers a judgement with one token constrained to the options' first
    tokens: a single token each, or (as "Yes" here, split by a small vocabulary) first
    tokens that differ."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
    for options in (JUDGE_OPTIONS, PROMPTED_VERIFY_OPTIONS):
        first = [tokenizer.encode(o, add_special_tokens=False)[0] for o in options]
        assert len(set(first)) == len(options), options


def test_streamed_search_sends_the_stages_in_order_then_the_answer(served, image_url):
    payload = body(served, image_url, beam_width=2, selector="judge", stream=True,
                   stream_options={"include_usage": True})
    chunks = stream_chunks(served.server.base_url, payload)
    reasoning = joined(chunks, "reasoning")
    assert [m.group(1) for m in re.finditer(r"<([A-Z]+)>", reasoning)] == TAGS[:3]
    assert reasoning.endswith("</REASONING>\n\n")
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] in ("stop", "length")
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_system_message_is_kept_beside_the_format_instruction(served, image_url):
    payload = body(served, image_url, beam_width=1)
    payload["messages"].insert(0, {"role": "system", "content": "Answer briefly."})
    check_answer(post(served, payload), 1)


def test_a_conversation_the_template_refuses_is_a_400_not_a_500(served, image_url):
    payload = body(served, image_url, beam_width=1)
    payload["messages"].append({"role": "user", "content": "And blue ones?"})  # user twice
    response = httpx.post(f"{served.server.base_url}{URL}", json=payload, timeout=300)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:  # Gemma 3's template: roles must alternate
        assert "chat template refused" in response.json()["error"]["message"]


def test_docs_models_table_matches_the_matrix():
    """docs/models.md has a row per family (by its architecture) whose CPU column says what
    EXPECTED declares, and names the reason where a family does not run everywhere."""
    text = (ROOT / "docs" / "models.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for family in FAMILIES.values():
            if len(cells) > 2 and cells[1] == f"`{family.architecture}`":
                rows[family.name] = cells
    assert set(rows) == set(EXPECTED) == set(FAMILIES)
    for name, expected in EXPECTED.items():
        assert rows[name][2] == expected.status, (name, rows[name])
        if expected.why:
            assert expected.why in " ".join(text.split()), name
