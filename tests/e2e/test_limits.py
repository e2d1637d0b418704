"""Overload, deadlines and admission control on the real server (8 running + 8 queued)."""

import asyncio
import json

import httpx

from tests.e2e.waiting import wait_idle

URL = "/v1/chat/completions"


def test_overload_ends_every_request_in_200_or_429_and_the_server_recovers(server, chat_body):
    body = {**chat_body, "beam_width": 2}

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=300,
                                     limits=limits) as client:
            return await asyncio.gather(*(client.post(URL, json=body) for _ in range(64)))

    responses = asyncio.run(main())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 16 and statuses.count(429) >= 1
    busy = next(r for r in responses if r.status_code == 429)
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["code"] == "server_busy"
    after = httpx.post(f"{server.base_url}{URL}", json=chat_body, timeout=60)
    assert after.status_code == 200


# A 1 ms deadline: no search of four sequential stages (each at least one engine step) can
# finish in it, however fast the machine or short the model's stages.
DEADLINE = 0.001


def test_a_request_past_its_deadline_gets_504_and_its_search_is_aborted(server, chat_body):
    body = {**chat_body, "beam_width": 8, "stage_max_tokens": 400, "timeout": DEADLINE}
    response = httpx.post(f"{server.base_url}{URL}", json=body, timeout=60)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    wait_idle(server)


def test_a_stream_past_its_deadline_ends_with_an_error_event(server, chat_body):
    body = {**chat_body, "beam_width": 8, "stage_max_tokens": 400, "timeout": DEADLINE,
            "stream": True}
    with httpx.stream("POST", f"{server.base_url}{URL}", json=body, timeout=60) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])["error"]
    assert error["code"] == "timeout"
    wait_idle(server)
