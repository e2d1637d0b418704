"""Exceptions -> OpenAI-shaped errors: {"error": {"message", "type", "param", "code"}}.

`as_api_error` is the one mapping from what can go wrong while serving a request (deadline,
prompt too long, bad image, dead engine, anything else) to a status and an error; the JSON
route raises it, the event stream sends it as its last event."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.images.decoding import ImageError
from server.search.interface import EngineDead, InvalidRequest, PromptTooLong

log = logging.getLogger(__name__)

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
          429: "rate_limit_error", 503: "service_unavailable", 504: "timeout"}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


def as_api_error(exc: BaseException, timeout: float | None = None) -> APIError:
    """The API error a failure while serving a request becomes (unknown failures: 500)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, TimeoutError):
        within = f" {timeout:g} s" if timeout is not None else ""
        return APIError(504, f"the request took longer than its{within} deadline; every branch "
                        "of its search was aborted", code="timeout")
    if isinstance(exc, PromptTooLong):
        return APIError(400, f"the prompt does not fit the model's context: {exc}",
                        param="messages", code="context_length_exceeded")
    if isinstance(exc, ImageError):
        return APIError(413 if exc.too_large else 400, str(exc), param="messages",
                        code="invalid_image")
    if isinstance(exc, InvalidRequest):
        return APIError(400, f"the engine refused the request: {exc}", code="invalid_request")
    if isinstance(exc, EngineDead):
        return APIError(503, f"the engine failed: {exc}", code="engine_dead")
    return APIError(500, "the engine failed while generating", code="engine_error")


def error_body(status: int, message: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return ErrorResponse(error=ErrorDetail(message=message, type=kind, param=param,
                                           code=code)).model_dump()


def error_response(status: int, message: str, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status,
                        headers=headers)


def api_error_body(error: APIError) -> dict[str, Any]:
    return error_body(error.status, error.message, error.param, error.code)


def rename_param(param: str | None, names: Mapping[str, str]) -> str | None:
    """`param` as another endpoint's request names it (`names`: chat completion field -> that
    endpoint's field; a dotted path is renamed by its head)."""
    if param is None:
        return None
    head, dot, rest = param.partition(".")
    return names.get(head, head) + dot + rest


def renamed(error: APIError, names: Mapping[str, str]) -> APIError:
    """The same error, naming its field as another endpoint's request does."""
    return APIError(error.status, error.message, rename_param(error.param, names), error.code,
                    error.headers)


def invalid_request(errors: Sequence[Any], names: Mapping[str, str] | None = None) -> APIError:
    """A failed validation as the 400 the server answers with, naming the field (as `names`
    renames it, for a request validated in another endpoint's terms)."""
    located = list(errors)
    if names:
        located = [{**e, "loc": (rename_param(str(e["loc"][0]), names), *e["loc"][1:])}
                   if e.get("loc") else e for e in located]
    message, param = _describe(located)
    return APIError(400, message, param, "invalid_request")


_BRANCHES = {"str", "int", "float", "bool", "dict", "list", "none"}


def _describe(errors: list[Any]) -> tuple[str, str | None]:
    # the deepest error is the informative one (not the union branch the input did not take)
    first = max(errors, key=lambda e: len(e.get("loc", ())))
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    # drop pydantic's union-branch names (e.g. "str", "list[...]", "TextPart") from the path
    param = ".".join(p for p in loc if not p[:1].isupper() and "[" not in p
                     and p not in _BRANCHES) or None
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        return f"unsupported field {param!r}: this server does not take it", param
    if kind == "json_invalid":
        return "request body is not valid JSON", None
    if kind == "missing" and not loc:
        return "request body is missing", None
    message = first.get("msg", "invalid request")
    message = message.removeprefix("Value error, ")
    return (f"{param}: {message}" if param else message), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = invalid_request(exc.errors())
        return error_response(error.status, error.message, error.param, error.code)

    @app.exception_handler(json.JSONDecodeError)
    async def _json(_: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return error_response(400, f"request body is not valid JSON: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail),
                              headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request_id=%s unhandled error on %s",
                      getattr(request.state, "request_id", "-"), request.url.path)
        return error_response(500, "internal server error", code="internal_error")
