"""Warm-up before ready (server/api/warmup.py): the requests it sends, and the warm-up run on a
FAKE engine (tests/unit/server/search/fake_engine.py), alone and inside the app built by
create_app. tests/e2e/test_warmup.py runs it on the real engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from server.api.protocol import ChatCompletionRequest
from server.api.serving import ChatService
from server.api.state import Readiness, ServerState, server_state
from server.api.warmup import (
    WARMUP_STAGE_TOKENS,
    request_body,
    warm_up,
    warmup_image,
    warmup_paths,
)
from server.app import create_app
from server.config import Settings
from server.metrics import Metrics
from server.request_id import current_request_id
from server.search.beam import StageSearch
from server.search.interface import (
    ChoiceResult,
    EngineDead,
    GenerateResult,
    Prompt,
    Sampling,
    prompt_text,
)
from server.search.params import Selector
from tests.unit.server.search.fake_engine import FakeEngine, render_chat_fake

SETTINGS = Settings(served_model_name=("fake",))


class WarmedFake(FakeEngine):
    """The FAKE engine as the app holds one. It notes each call's images and request id; it
    can hold its calls until `release` is set, fail calls with a structured-output constraint,
    or die on its first call; its one-token answers are always the first option."""

    max_model_len = 4096

    def __init__(self, hold: bool = False, refuse_constraints: bool = False,
                 die: bool = False) -> None:
        super().__init__()
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.refuse_constraints = refuse_constraints
        self.die = die
        self.dead = False
        self.images: list[int] = []
        self.request_ids: set[str | None] = set()

    def render_chat(self, messages: list[dict[str, Any]], kwargs: Any = None) -> str:
        return render_chat_fake(messages, kwargs)

    async def generate(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling,
                       *args: Any) -> GenerateResult:
        await self.release.wait()
        self.images.append(len(images))
        self.request_ids.add(current_request_id())
        if self.die:
            self.dead = True
            raise EngineDead("the FAKE engine died on cue")
        if self.refuse_constraints and sampling.constraint is not None:
            raise ValueError("the FAKE engine refuses structured output")
        return await super().generate(prompt, images, sampling, *args)

    async def choose(self, prompt: Prompt, images: Sequence[Any], options: Sequence[str]
                     ) -> ChoiceResult:
        """Any question (the prompted mode's too): the first option, at even odds."""
        await self.release.wait()
        self.images.append(len(images))
        self.choose_calls.append(prompt_text(prompt))
        return ChoiceResult(0, [math.log(1 / len(options))] * len(options), 1, 0)

    async def shutdown(self) -> None:
        pass


def service(engine: WarmedFake, metrics: Metrics) -> ChatService:
    return ChatService(StageSearch(engine, engine.render_chat, metrics), metrics, "fake")


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("mode", ["native", "prompted"])
@pytest.mark.parametrize("schema", ["llava-cot", "think-answer"])
def test_each_path_is_a_valid_request_down_its_own_path(mode: str, schema: str) -> None:
    settings = Settings(served_model_name=("served", "alias"), stage_mode=mode,
                        stage_schema=schema)
    image_url = "data:image/png;base64,AAAA"
    params = {}
    for path in warmup_paths(settings):
        body = ChatCompletionRequest.model_validate(request_body(settings, path, image_url))
        assert body.model == "served" and body.image_count == 1
        assert not body.ignored_fields
        params[path.name] = body.to_search_params(settings), body
    assert set(params) == {"one_call", "logprobs", "judge", "verify", "structured"}
    for p, _ in params.values():
        assert p.prompted is (mode == "prompted")
        assert p.schema.name == schema
        assert p.default_stage_max_tokens == WARMUP_STAGE_TOKENS
    assert params["one_call"][1].stream and params["one_call"][0].beam_width == 1
    assert params["logprobs"][0].answer_logprobs == 2
    judge, body = params["judge"]
    assert (judge.beam_width, judge.selector, body.n, judge.sampling.seed) == (
        4, Selector.JUDGE, 2, 0)
    verify = params["verify"][0]
    assert (verify.beam_width, verify.selector, verify.sampling.seed) == (4, Selector.VERIFY,
                                                                         None)
    # sampled candidates (n > 1 sampling), hot enough to differ: the same ones are not judged
    assert judge.sampling.temperature == verify.sampling.temperature == 2.0
    assert params["structured"][0].constraint is not None


def test_paths_keep_within_the_servers_limits() -> None:
    settings = Settings(max_n=1, stage_max_tokens=8,
                        engine={"limit_mm_per_prompt": {"image": 0}})
    judge = next(p for p in warmup_paths(settings) if p.name == "judge")
    body = request_body(settings, judge, None)  # a server that takes no images: text only
    assert body["n"] == 1 and body["stage_max_tokens"] == 8
    assert [part["type"] for part in body["messages"][0]["content"]] == ["text"]
    image = warmup_image()
    assert image.size[0] * image.size[1] <= settings.max_image_pixels


async def test_fake_engine_warm_up_takes_every_kind_of_engine_call_with_the_image() -> None:
    engine, metrics = WarmedFake(), Metrics()
    report = await warm_up(service(engine, metrics), SETTINGS, metrics, lambda: engine.dead)
    assert not report.failed and not report.engine_dead
    assert list(report.seconds) == ["one_call", "logprobs", "judge", "verify", "structured"]
    for kind in ("stage", "stages", "selection"):
        assert sample(metrics, "cot_server_engine_calls_total", kind=kind) > 0, kind
    for path in report.seconds:
        assert sample(metrics, "cot_server_warmup_requests_total", path=path,
                      outcome="ok") == 1
    assert sample(metrics, "cot_server_warmup_seconds") == report.total > 0
    # not a request: nothing that counts HTTP requests saw it
    assert sample(metrics, "cot_server_request_duration_seconds_count") == 0
    assert sample(metrics, "cot_server_time_to_first_token_seconds_count") == 0
    calls = [s for _, s in engine.generate_calls]
    # n > 1 sampling, unseeded and seeded (which the vLLM adapter splits into n requests)
    assert any(s.n == 4 and s.temperature > 0 and s.seed is None for s in calls)
    assert any(s.n == 4 and s.temperature > 0 and s.seed is not None for s in calls)
    assert any(s.token_logprobs == 2 for s in calls)
    assert any(s.constraint is not None for s in calls)
    assert any("[Judge]" in p for p in engine.choose_calls)
    assert any("[Verify]" in p for p in engine.choose_calls)
    assert set(engine.images) == {1}  # every call carried the picture
    assert engine.request_ids == {f"warmup-{name}" for name in report.seconds}
    assert current_request_id() is None  # unbound again


async def test_fake_engine_warm_up_in_prompted_mode() -> None:
    settings = Settings(served_model_name=("fake",), stage_mode="prompted",
                        stage_schema="think-answer")
    engine, metrics = WarmedFake(), Metrics()
    report = await warm_up(service(engine, metrics), settings, metrics, lambda: engine.dead)
    assert not report.failed
    assert engine.generate_calls and engine.choose_calls


async def test_a_failing_path_is_a_warning_and_the_others_still_run(caplog) -> None:
    caplog.set_level(logging.INFO, "server.api.warmup")
    engine, metrics = WarmedFake(refuse_constraints=True), Metrics()
    report = await warm_up(service(engine, metrics), SETTINGS, metrics, lambda: engine.dead)
    assert list(report.failed) == ["structured"] and not report.engine_dead
    assert "refuses structured output" in report.failed["structured"]
    assert len(report.seconds) == 5
    assert sample(metrics, "cot_server_warmup_requests_total", path="structured",
                  outcome="failed") == 1
    assert sample(metrics, "cot_server_warmup_requests_total", path="verify",
                  outcome="ok") == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "structured" in warnings[0].getMessage()
    assert "structured" in report.summary() and "(failed)" in report.summary()


async def test_an_engine_that_dies_ends_the_warm_up() -> None:
    engine, metrics = WarmedFake(die=True), Metrics()
    report = await warm_up(service(engine, metrics), SETTINGS, metrics, lambda: engine.dead)
    assert report.engine_dead and list(report.seconds) == ["one_call"]
    assert sample(metrics, "cot_server_warmup_requests_total", path="one_call",
                  outcome="failed") == 1


@contextlib.asynccontextmanager
async def app_on(engine: WarmedFake, settings: Settings = SETTINGS
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, ServerState]]:
    async def factory(_: Settings) -> WarmedFake:
        return engine

    app = create_app(settings, engine_factory=factory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, server_state(app)


async def until(state: ServerState, *states: Readiness) -> None:
    async with asyncio.timeout(10):
        while state.lifecycle.readiness not in states:
            await asyncio.sleep(0.005)


async def test_fake_engine_app_is_warming_not_ready_until_the_warm_up_is_done() -> None:
    engine = WarmedFake(hold=True)
    async with app_on(engine) as (client, state):
        await until(state, Readiness.WARMING)
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()) == (503, {"status": "warming"})
        assert (await client.get("/health")).json() == {"status": "ok"}
        refused = await client.post("/v1/chat/completions", json={
            "model": "fake", "messages": [{"role": "user", "content": "Hi"}]})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
        assert sample(state.metrics, "cot_server_readiness", state="warming") == 1
        engine.release.set()
        await until(state, Readiness.READY)
        assert (await client.get("/ready")).json() == {"status": "ready"}
        metrics = state.metrics
        assert sample(metrics, "cot_server_warmup_seconds") > 0
        assert sum(sample(metrics, "cot_server_warmup_requests_total", path=p.name,
                          outcome="ok") for p in warmup_paths(SETTINGS)) == 5
        # the refused request is the only HTTP request counted
        assert sample(metrics, "cot_server_requests_total", route="/v1/chat/completions",
                      status="503") == 1
        assert sample(metrics, "cot_server_requests_total", route="/v1/chat/completions",
                      status="200") == 0


async def test_fake_engine_app_without_warmup_is_ready_with_no_engine_call() -> None:
    engine = WarmedFake()
    async with app_on(engine, Settings(served_model_name=("fake",), warmup=False)) as (
            client, state):
        await until(state, Readiness.READY)
        assert (await client.get("/ready")).status_code == 200
        assert not engine.generate_calls and not engine.choose_calls
        assert sample(state.metrics, "cot_server_warmup_seconds") == 0


async def test_fake_engine_app_whose_engine_dies_in_warm_up_never_turns_ready() -> None:
    engine = WarmedFake(die=True)
    async with app_on(engine) as (client, state):
        await until(state, Readiness.FAILED)
        assert (await client.get("/ready")).json() == {"status": "engine_dead"}
        assert (await client.get("/health")).status_code == 503


async def test_a_drain_during_warm_up_is_not_undone_by_its_end() -> None:
    engine = WarmedFake(hold=True)
    async with app_on(engine) as (client, state):
        await until(state, Readiness.WARMING)
        state.lifecycle.drain()
        engine.release.set()
        while sample(state.metrics, "cot_server_warmup_seconds") == 0:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
        assert state.lifecycle.readiness is Readiness.DRAINING
        assert (await client.get("/ready")).json() == {"status": "draining"}
