"""The one mapping from what can go wrong while serving to an OpenAI-shaped error (pure)."""

import pytest

from server.api.errors import APIError, api_error_body, as_api_error
from server.images.decoding import ImageError
from server.search.interface import EngineDead, PromptTooLong


@pytest.mark.parametrize(("exc", "status", "code"), [
    (TimeoutError(), 504, "timeout"),
    (PromptTooLong("9000 tokens"), 400, "context_length_exceeded"),
    (ImageError("not an image"), 400, "invalid_image"),
    (ImageError("huge", too_large=True), 413, "invalid_image"),
    (EngineDead("gone"), 503, "engine_dead"),
    (RuntimeError("boom"), 500, "engine_error"),
])
def test_each_failure_has_one_status_and_code(exc, status, code):
    error = as_api_error(exc, timeout=2.5)
    assert (error.status, error.code) == (status, code)
    body = api_error_body(error)["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["code"] == code
    assert body["type"] == {400: "invalid_request_error", 413: "invalid_request_error",
                            503: "service_unavailable", 504: "timeout"}.get(status,
                                                                           "server_error")


def test_api_errors_pass_through_and_deadlines_name_their_length():
    error = APIError(429, "busy", code="server_busy")
    assert as_api_error(error) is error
    assert "2.5 s deadline" in as_api_error(TimeoutError(), timeout=2.5).message
    assert "boom" not in as_api_error(RuntimeError("boom")).message  # no internals leak
