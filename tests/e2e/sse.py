"""Reading a streamed chat completion in the e2e tests: the whole stream, checked to end in
`data: [DONE]` with no error event, as its JSON chunks."""

from __future__ import annotations

import json
from typing import Any

import httpx

URL = "/v1/chat/completions"


def stream_chunks(base_url: str, body: dict[str, Any], timeout: float = 300) -> list[Any]:
    """POST a streamed request; its chunks, once the stream ended with [DONE] and no error."""
    with httpx.stream("POST", f"{base_url}{URL}", json=body, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert not any("error" in c for c in chunks), chunks
    return chunks


def joined(chunks: list[Any], field: str) -> str:
    """One delta field (`reasoning`, `reasoning_content`, `content`) over the whole stream."""
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"])
