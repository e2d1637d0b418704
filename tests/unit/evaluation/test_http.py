"""Retries and backoff against a FAKE endpoint (an httpx mock transport)."""

import asyncio

import httpx

from evaluation.http import backoff, post_with_retries


def test_backoff():
    assert [backoff(i) for i in (1, 2, 3, 9)] == [1.0, 2.0, 4.0, 30.0]
    assert backoff(1, "5") == 5.0 and backoff(3, "1") == 4.0 and backoff(1, "soon") == 1.0


def post(statuses: list[int], retries: int):
    sent: list[int] = []
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        status = statuses.pop(0) if statuses else 200
        if status == 0:
            raise httpx.ConnectError("refused")
        return httpx.Response(status, headers={"retry-after": "3"}, json={"ok": status})

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main():
        async with httpx.AsyncClient(base_url="http://x", transport=httpx.MockTransport(
                handler)) as client:
            return await post_with_retries(client, "/p", {}, retries, sleep)

    return asyncio.run(main()), len(sent), waits


def test_retries_connection_errors_429_and_503_only():
    posted, sent, waits = post([0, 503, 429], retries=4)
    assert posted.status == 200 and posted.response is not None and posted.attempts == 4
    assert sent == 4 and waits == [1.0, 3.0, 4.0]  # Retry-After when longer
    posted, sent, _ = post([500], retries=4)
    assert (posted.status, posted.attempts, sent, posted.response) == (500, 1, 1, None)
    assert posted.error and "500" in posted.error
    posted, sent, _ = post([503, 503, 503], retries=1)
    assert (posted.status, posted.attempts) == (503, 2)
    posted, _, _ = post([0, 0], retries=1)
    assert posted.status == 0 and posted.error.startswith("ConnectError")
