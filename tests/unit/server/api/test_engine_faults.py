"""A dead engine, in-process (create_app on a FAKE engine, tests/unit/server/search/
fake_engine.py, whose core can be "killed" while calls wait on it): requests in flight fail at
once with the OpenAI error shape, then /health, /ready and new requests answer 503 until the
grace period ends and the process is asked to exit. tests/e2e/test_auth_and_faults.py kills the
real engine core."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from server.api.state import Lifecycle, Readiness, ServerState, server_state
from server.app import create_app
from server.config import Settings
from server.search.interface import ChoiceResult, EngineDead, GenerateResult, Prompt, Sampling
from tests.unit.server.search.fake_engine import FakeEngine, render_chat_fake

URL = "/v1/chat/completions"
BODY = {"model": "fake", "messages": [{"role": "user", "content": "How many?"}]}
HANG_GUARD = 10  # seconds: only a hang ever waits this long


class KillableFake(FakeEngine):
    """The FAKE engine as the app holds one. Once `hold` is set, its calls wait until `kill`;
    after `kill` it is dead: waiting and new calls raise EngineDead (as the vLLM adapter does
    when the engine core is gone)."""

    max_model_len = 4096

    def __init__(self) -> None:
        super().__init__()
        self.dead = False
        self.hold = False
        self.waiting = 0
        self.killed = asyncio.Event()

    def render_chat(self, messages: list[dict[str, Any]], kwargs: Any = None) -> str:
        return render_chat_fake(messages, kwargs)

    async def _core(self) -> None:
        if self.hold and not self.dead:
            self.waiting += 1
            await self.killed.wait()
        if self.dead:
            raise EngineDead("the FAKE engine core was killed")

    async def generate(self, prompt: Prompt, images: Sequence[Any], sampling: Sampling,
                       *args: Any) -> GenerateResult:
        await self._core()
        return await super().generate(prompt, images, sampling, *args)

    async def choose(self, prompt: Prompt, images: Sequence[Any], options: Sequence[str]
                     ) -> ChoiceResult:
        await self._core()
        return await super().choose(prompt, images, options)

    def kill(self) -> None:
        self.dead = True
        self.killed.set()

    async def shutdown(self) -> None:
        pass


@contextlib.asynccontextmanager
async def served(engine: KillableFake, grace: float
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, ServerState, asyncio.Event]]:
    """The app on `engine`, ready; the event is set when the app asks the process to exit."""
    async def factory(_: Settings) -> KillableFake:
        return engine

    app = create_app(Settings(served_model_name=("fake",), stage_max_tokens=16,
                              engine_dead_grace=grace), engine_factory=factory)
    state = server_state(app)
    exit_requested = asyncio.Event()
    state.lifecycle.request_exit = exit_requested.set
    async with app.router.lifespan_context(app):
        await until(lambda: state.lifecycle.ready or state.lifecycle.failed)
        assert state.lifecycle.ready
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, state, exit_requested


async def until(condition: Any) -> None:
    async with asyncio.timeout(HANG_GUARD):
        while not condition():
            await asyncio.sleep(0.005)


def data_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("data: ")]


def assert_engine_dead_error(payload: dict[str, Any]) -> None:
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert error["code"] == "engine_dead" and error["type"] == "service_unavailable"
    assert error["message"] and "param" in error


async def assert_everything_is_503(client: httpx.AsyncClient) -> None:
    """The probes and every generating route answer 503: the engine is dead."""
    health, ready = await client.get("/health"), await client.get("/ready")
    assert (health.status_code, health.json()) == (503, {"status": "engine_dead"})
    assert (ready.status_code, ready.json()) == (503, {"status": "engine_dead"})
    for body in (BODY, {**BODY, "stream": True}):
        refused = await client.post(URL, json=body)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert_engine_dead_error(refused.json())
    refused = await client.post("/v1/responses", json={"model": "fake", "input": "Hi"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "engine_dead"


async def test_requests_in_flight_fail_at_once_then_everything_is_503_until_the_exit():
    engine = KillableFake()
    async with served(engine, grace=3600) as (client, state, exit_requested):
        engine.hold = True
        requests = [asyncio.create_task(client.post(URL, json=body)) for body in (
            BODY, {**BODY, "beam_width": 4}, {**BODY, "stream": True},
            {**BODY, "stream": True, "beam_width": 4, "n": 2})]
        await until(lambda: engine.waiting >= len(requests))  # each waits on the engine
        engine.kill()
        async with asyncio.timeout(HANG_GUARD):
            width_1, width_4, stream, streams = await asyncio.gather(*requests)
        for response in (width_1, width_4):
            assert response.status_code == 503
            assert_engine_dead_error(response.json())
        for response in (stream, streams):
            assert response.status_code == 200  # the stream had begun: the error is an event
            *_, error, done = data_lines(response.text)
            assert done == "data: [DONE]"
            assert_engine_dead_error(json.loads(error.removeprefix("data: ")))

        await assert_everything_is_503(client)  # from the moment the engine is dead
        await until(lambda: state.lifecycle.failed)  # the lifespan's watcher has seen it
        await assert_everything_is_503(client)
        assert state.metrics.registry.get_sample_value(
            "cot_server_readiness", {"state": "engine_dead"}) == 1
        assert not exit_requested.is_set()  # the grace period has an hour to run


async def test_the_exit_is_asked_for_once_the_grace_period_has_passed():
    engine = KillableFake()
    async with served(engine, grace=0.05) as (client, state, exit_requested):
        engine.kill()
        async with asyncio.timeout(HANG_GUARD):
            await exit_requested.wait()
        assert state.lifecycle.failed
        assert (await client.get("/health")).status_code == 503


async def test_fail_asks_for_the_exit_at_once_or_after_the_grace_period():
    asked: list[str] = []
    lifecycle = Lifecycle(request_exit=lambda: asked.append("now"))
    lifecycle.fail()
    assert lifecycle.readiness is Readiness.FAILED and asked == ["now"]

    later = asyncio.Event()
    lifecycle = Lifecycle(request_exit=later.set)
    lifecycle.fail(exit_after=0.01)
    assert lifecycle.failed and not later.is_set()  # a timer, not a call
    async with asyncio.timeout(HANG_GUARD):
        await later.wait()


async def test_a_clean_shutdown_exits_0_though_the_engine_looks_dead_after_it():
    """vLLM's engine reports itself errored once it is shut down: the exit status is decided
    before that (FAKE engine that turns dead in its shutdown)."""
    class DeadAfterShutdown(KillableFake):
        async def shutdown(self) -> None:
            self.dead = True

    engine = DeadAfterShutdown()
    async with served(engine, grace=3600) as (client, state, _):
        assert (await client.post(URL, json=BODY)).status_code == 200
    assert engine.dead and state.exit_status == 0
    killed = KillableFake()
    async with served(killed, grace=3600) as (_, state, _):
        killed.kill()
    assert state.exit_status == 1
