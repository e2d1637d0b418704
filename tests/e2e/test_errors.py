"""Bad requests get OpenAI-shaped 4xx errors from the real server, which keeps serving."""

import base64
import io

import httpx
import pytest
from PIL import Image

URL = "/v1/chat/completions"


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


def with_image(chat_body, url):
    body = {**chat_body, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "q"}]}]}
    return body


@pytest.mark.parametrize("change, param", [
    ({"beam_width": 0}, "beam_width"), ({"temperature": -1}, "temperature"),
    ({"selector": "coin"}, "selector"), ({"max_tokens": 0}, "max_tokens"),
    ({"messages": []}, "messages"), ({"logit_bias": {"one": 5}}, "logit_bias"),
    ({"n": 9}, "n"), ({"stage_max_tokens": {"plan": 4}}, "stage_max_tokens"),
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
])
def test_bad_parameters_are_400_naming_the_field(server, chat_body, change, param):
    assert_error(httpx.post(f"{server.base_url}{URL}", json={**chat_body, **change}), 400, param)


def test_unknown_model_is_404(server, chat_body):
    assert_error(httpx.post(f"{server.base_url}{URL}", json={**chat_body, "model": "x"}), 404)


def test_transport_errors(server):
    assert_error(httpx.post(f"{server.base_url}{URL}", content=b"{not json",
                            headers={"content-type": "application/json"}), 400)
    assert_error(httpx.post(f"{server.base_url}{URL}", content=b"hello",
                            headers={"content-type": "text/plain"}), 400)
    assert_error(httpx.post(f"{server.base_url}{URL}", content=b"x" * 3_100_000,
                            headers={"content-type": "application/json"}), 413)


def test_bad_images(server, chat_body):
    post = lambda url: httpx.post(f"{server.base_url}{URL}",  # noqa: E731
                                  json=with_image(chat_body, url))
    assert_error(post("data:image/png;base64,!!!"), 400, "messages")
    assert_error(post("data:image/gif;base64,R0lGODlh"), 400, "messages")
    assert_error(post("https://example.com/a.png"), 400, "messages")
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buffer, "PNG")
    bomb = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert_error(post(bomb), 413, "messages")


def test_seed_with_several_candidates_does_not_hurt_the_engine(server, chat_body):
    body = {**chat_body, "beam_width": 4, "seed": 3, "n": 2}
    assert httpx.post(f"{server.base_url}{URL}", json=body, timeout=120).status_code == 200
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert httpx.post(f"{server.base_url}{URL}", json=chat_body, timeout=60).status_code == 200
