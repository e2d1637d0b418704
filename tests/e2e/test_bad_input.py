"""Malformed and hostile input gets an OpenAI-shaped 4xx from the real server, which keeps
serving; remote image URLs are refused by default and, when enabled, never reach loopback."""

from __future__ import annotations

import base64
import http.server
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest
from PIL import Image

from server.images.decoding import encode_data_url
from tests.conftest import shapes_image, start_server

URL = "/v1/chat/completions"


def assert_error(response: httpx.Response, status: int, param: str | None = None,
                 code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ("invalid_request_error" if status in (400, 413) else error["type"])
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


def still_serving(server, chat_body) -> None:
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    ok = httpx.post(f"{server.base_url}{URL}", json=chat_body, timeout=120)
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["role"] == "assistant"


def post(server, body=None, **kwargs) -> httpx.Response:
    if body is not None:
        kwargs["json"] = body
    return httpx.post(f"{server.base_url}{URL}", timeout=120, **kwargs)


def user(*parts) -> dict:
    return {"role": "user", "content": list(parts)}


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def zero_size_png() -> str:
    """A PNG whose header says 0x0 pixels (PIL refuses to write one)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(raw).decode()


# ------------------------------------------------------------------- messages


@pytest.mark.parametrize("messages, needle", [
    ([{"role": "tool", "content": "hi"}], "role"),
    ([{"role": "system", "content": "be brief"}], "user message"),
    ([{"role": "assistant", "content": "hello"}], "user message"),
    ([{"role": "user", "content": 5}], "content"),
    (["just a string"], "messages.0"),
    ({"role": "user", "content": "not a list"}, "messages"),
    ([user({"type": "audio", "audio": {"data": "x"}})], None),
    ([user({"type": "input_text", "text": "q"})], None),
    ([user({"type": "text", "text": 123})], None),
    ([user({"type": "text", "text": ["a", "b"]})], None),
    ([user({"type": "text"})], None),
    ([user({"type": "image_url", "image_url": "data:,"})], None),
])
def test_malformed_messages_are_400(server, chat_body, messages, needle):
    error = assert_error(post(server, {**chat_body, "messages": messages}), 400)
    if needle is not None:
        assert needle in error["message"], error
    if error["param"] is not None:
        assert error["param"].startswith("messages"), error


@pytest.mark.parametrize("part, needle", [
    ({"type": "audio", "audio": {"data": "x"}}, "audio"),
    ({"type": "text", "text": 123}, "string"),
])
def test_a_bad_content_part_is_named_in_the_error(server, chat_body, part, needle):
    error = assert_error(post(server, {**chat_body, "messages": [user(part)]}), 400)
    assert needle in error["message"] and error["param"].startswith("messages.0.content.0")


def test_a_prompt_longer_than_the_context_is_400_saying_it_does_not_fit(server, chat_body):
    words = " ".join(["red blue circle square"] * 750)  # 3000 words, far over 2048 tokens
    error = assert_error(post(server, {**chat_body, "messages": [user(
        image_part(chat_body["messages"][0]["content"][0]["image_url"]["url"]),
        {"type": "text", "text": words})]}), 400, "messages", "context_length_exceeded")
    assert "does not fit" in error["message"]
    still_serving(server, chat_body)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_a_token_budget_above_the_context_is_400_naming_the_field(server, chat_body, field):
    error = assert_error(post(server, {**chat_body, field: 5000}), 400, field)
    assert "2048" in error["message"]
    ok = post(server, {**chat_body, field: 2048})  # the context itself is fine
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("change, param", [
    ({"top_p": 1.5}, "top_p"), ({"top_p": 0}, "top_p"), ({"temperature": 2.5}, "temperature"),
    ({"top_p": "high"}, "top_p"), ({"n": 0}, "n"), ({"seed": 2**63}, "seed"),
    ({"seed": -(2**63) - 1}, "seed"), ({"stream": "maybe"}, "stream"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"timeout": 0}, "timeout"),
    ({"model": 7}, "model"),
])
def test_out_of_range_parameters_are_400(server, chat_body, change, param):
    assert_error(post(server, {**chat_body, **change}), 400, param)


# ------------------------------------------------- the request reviewed against OpenAI's checks


@pytest.mark.parametrize("message", [
    {"role": "user", "content": None}, {"role": "user"}, {"role": "system", "content": None},
    {"role": "developer", "content": None}, {"role": "assistant", "content": None},
    {"role": "user", "content": []},
])
def test_null_missing_or_empty_content_is_400_as_in_openai(server, chat_body, message):
    body = {**chat_body, "messages": [message, *chat_body["messages"]]}
    error = assert_error(post(server, body), 400)
    assert error["param"].startswith("messages.0.content"), error


def test_the_openai_sdk_gets_a_bad_request_error_for_null_user_content(server):
    import openai

    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny-cot", messages=[
            {"role": "user", "content": None}])  # type: ignore[misc, list-item]
    assert refused.value.status_code == 400
    assert refused.value.body["param"] == "messages.0.content"


def test_an_assistant_turn_with_tool_calls_may_have_null_content(server, chat_body):
    call = {"id": "call_1", "type": "function",
            "function": {"name": "count", "arguments": "{}"}}
    body = {**chat_body, "messages": [
        *chat_body["messages"], {"role": "assistant", "content": None, "tool_calls": [call]},
        *chat_body["messages"]]}
    response = post(server, body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("change, param", [
    ({"max_tokens": "5"}, "max_tokens"), ({"n": 1.5}, "n"), ({"n": "2"}, "n"),
    ({"temperature": "0.5"}, "temperature"), ({"stream": 1}, "stream"),
    ({"logprobs": "true"}, "logprobs"), ({"seed": 1.5}, "seed"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"max_completion_tokens": 0},
                                            "max_completion_tokens"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
     "response_format.json_schema.name"),
    ({"messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]},
        {"role": "user", "content": "q"}]}, "messages.0.content"),
])
def test_what_openai_refuses_is_400_naming_the_field(server, chat_body, change, param):
    assert_error(post(server, {**chat_body, **change}), 400, param)


@pytest.mark.parametrize("change", [
    {"n": None, "stream": None, "logprobs": None, "frequency_penalty": None,
     "presence_penalty": None},  # null is the default, as OpenAI and vLLM take it
    {"seed": -1}, {"seed": -(2**63)},  # any signed 64-bit seed
    {"reasoning_effort": "xhigh"}, {"repetition_penalty": 2.5},  # vLLM: any penalty > 0
    {"temperature": 1, "top_p": 1},  # integers are numbers
])
def test_what_openai_or_vllm_accept_is_served(server, chat_body, change):
    response = post(server, {**chat_body, **change})
    assert response.status_code == 200, response.text


# ------------------------------------------------------------------- images


def test_more_images_than_allowed_is_400(server, chat_body, image_url):
    five = [image_part(image_url) for _ in range(5)]
    error = assert_error(post(server, {**chat_body, "messages": [
        user(*five, {"type": "text", "text": "q"})]}), 400, "messages")
    assert "at most 4 images" in error["message"]
    four = [image_part(encode_data_url(shapes_image((32, 32)))) for _ in range(4)]
    ok = post(server, {**chat_body, "messages": [user(*four, {"type": "text", "text": "q"})]})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("url, needle", [
    (zero_size_png(), "image"),
    ("data:image/png;base64,", "empty"),
    ("data:image/png;base64,iVBORw0KGgo=", "could not be decoded"),  # a bare PNG signature
    ("data:;base64,AAAA", "media type"),
    ("image.png", "data: URL"),
    ("file:///etc/passwd", "data: URL"),
    ("http://example.com/a.png", "not enabled"),
    ("https://169.254.169.254/latest/meta-data", "not enabled"),
])
def test_bad_images_are_400(server, chat_body, url, needle):
    error = assert_error(post(server, {**chat_body, "messages": [
        user(image_part(url), {"type": "text", "text": "q"})]}), 400, "messages", "invalid_image")
    assert needle in error["message"], error


def test_an_image_over_the_pixel_limit_is_413(server, chat_body):
    buffer = io.BytesIO()
    Image.new("L", (4097, 4097)).save(buffer, "PNG")  # default limit: 4096 x 4096 pixels
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert_error(post(server, {**chat_body, "messages": [
        user(image_part(url), {"type": "text", "text": "q"})]}), 413, "messages")


# ------------------------------------------------------------------- the body itself


@pytest.mark.parametrize("content, content_type", [
    (b"[]", "application/json"),
    (b'[{"model": "tiny-cot"}]', "application/json"),
    (b"", "application/json"),
    (b"", None),
    (b"null", "application/json"),
    (b'"a string"', "application/json"),
    (b"42", "application/json"),
    (b"{}", "application/json"),
    (b'{"model": "tiny-cot", "messages": [', "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b'{"model": "tiny-cot", "messages": NaN}', "application/json"),
])
def test_bodies_that_are_not_a_request_object_are_400(server, content, content_type):
    headers = {"content-type": content_type} if content_type else {}
    assert_error(post(server, content=content, headers=headers), 400)


def test_deeply_nested_json_is_400_not_a_crash(server, chat_body):
    nested = b"[" * 100_000 + b"]" * 100_000
    response = post(server, content=b'{"model": "tiny-cot", "messages": ' + nested + b"}",
                    headers={"content-type": "application/json"})
    assert_error(response, 400)
    still_serving(server, chat_body)


def test_wrong_methods_and_paths_are_openai_shaped(server):
    base = server.base_url
    response = httpx.get(f"{base}{URL}", timeout=10)
    assert response.status_code == 405 and set(response.json()["error"]) == {
        "message", "type", "param", "code"}
    response = httpx.post(f"{base}/v1/completions", json={}, timeout=10)
    assert response.status_code == 404 and "error" in response.json()


def test_the_server_still_answers_after_all_that(server, chat_body):
    still_serving(server, chat_body)
    assert httpx.get(f"{server.base_url}/metrics", timeout=10).status_code == 200


# ------------------------------------------------------------------- remote images


class _Images(http.server.BaseHTTPRequestHandler):
    """A tiny local image server that counts the requests it gets."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        buffer = io.BytesIO()
        shapes_image().save(buffer, "PNG")
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(buffer.getvalue())))
        self.end_headers()
        self.wfile.write(buffer.getvalue())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_remote_images_never_reach_loopback_even_when_allow_listed(tmp_path, chat_body,
                                                                   image_host):
    port = image_host
    assert httpx.get(f"http://127.0.0.1:{port}/probe.png").status_code == 200  # it is there
    _Images.hits.clear()
    remote = start_server(tmp_path / "server.log", "--remote-images",
                          "--remote-image-domains", "localhost,127.0.0.1,::1",
                          "--remote-image-timeout", "5",
                          "--gpu-memory-utilization", "0.1")  # beside the session server
    try:
        for url in (f"http://127.0.0.1:{port}/x.png", f"http://localhost:{port}/x.png",
                    f"http://[::1]:{port}/x.png", f"http://[::ffff:127.0.0.1]:{port}/x.png",
                    f"http://127.1:{port}/x.png", f"http://2130706433:{port}/x.png"):
            error = assert_error(post(remote, {**chat_body, "messages": [
                user(image_part(url), {"type": "text", "text": "q"})]}), 400, "messages")
            assert "loopback" in error["message"] or "allow-list" in error["message"], error
        error = assert_error(post(remote, {**chat_body, "messages": [user(
            image_part(f"http://example.com:{port}/x.png"), {"type": "text", "text": "q"})]}),
            400, "messages")
        assert "allow-list" in error["message"]
        assert _Images.hits == []  # nothing ever connected
        ok = post(remote, chat_body)
        assert ok.status_code == 200, ok.text
    finally:
        remote.stop()
