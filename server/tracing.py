"""OpenTelemetry tracing, off unless `--otlp-traces-endpoint` names a collector (vLLM's engine
flag, so the engine traces to the same collector).

- One span per /v1 request (`Tracing.start`, from the tracing middleware), continuing the trace
  of a W3C `traceparent` header where the client sent one; the routes add what they learn (the
  search's shape, token counts) and the middleware ends it with the request's outcome.
- Code serving the request adds to it through the module functions, which find the request's
  span in a context variable and do nothing when there is none (tracing off, or outside a
  request): `set_attributes`, `add_usage`, `record_span` (a finished child span with its own
  times: a stage, from the API layer's StageChosen events), `span` (a child span around a
  block: what the search can call for its stages and selections) and `trace_headers` (the W3C
  headers of the request's span, for the engine's own spans to join the trace).

Child spans are children of the request's span, never of each other unless `parent` says so:
they attach nothing to the context, so they are safe in async generators and across tasks.
The SDK is imported only when tracing is on (the `otel` extra; vLLM installs it too)."""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_NAME = "cot-server"
TRACER_NAME = "cot-server"
PROTOCOL_VARIABLE = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"  # grpc (default) or http/protobuf
Attributes = Mapping[str, str | bool | int | float]

# attribute names: OpenTelemetry's HTTP conventions, vLLM's gen_ai names, ours under cot.
HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS = "http.response.status_code"
ERROR_TYPE = "error.type"
REQUEST_ID = "gen_ai.request.id"
PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"


@dataclass
class RequestSpan:
    """The span of one request, with the token counts its searches add up."""

    span: Any  # opentelemetry.trace.Span
    tracer: Any
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def set(self, attributes: Attributes) -> None:
        self.span.set_attributes(dict(attributes))

    def add_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def child(self, name: str, attributes: Attributes | None = None,
              start_ns: int | None = None, parent: Any = None) -> Any:
        from opentelemetry import trace

        context = trace.set_span_in_context(parent if parent is not None else self.span)
        return self.tracer.start_span(name, context=context, attributes=dict(attributes or {}),
                                      start_time=start_ns)

    def end(self, status: int, failure: int | None = None) -> None:
        """End with the request's outcome: the HTTP status sent and, for a stream that failed
        after its 200, the status of the error it ended with (5xx outcomes are errors)."""
        from opentelemetry.trace import Status, StatusCode

        outcome = failure or status
        self.span.set_attributes({HTTP_STATUS: status, PROMPT_TOKENS: self.prompt_tokens,
                                  COMPLETION_TOKENS: self.completion_tokens})
        if failure is not None:
            self.span.set_attribute(ERROR_TYPE, str(failure))
        if outcome >= 500:
            self.span.set_status(Status(StatusCode.ERROR, f"status {outcome}"))
        self.span.end()


class Tracing:
    """The server's tracer provider (None: tracing off). One per app, so tests can give
    theirs an in-memory exporter."""

    def __init__(self, provider: Any = None) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None

    @classmethod
    def to_collector(cls, endpoint: str | None) -> Tracing:
        """Spans batched to the OTLP collector at `endpoint` (gRPC unless
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL says http/protobuf, as vLLM reads it); off for
        None. Exporting happens in the background: an unreachable collector costs requests
        nothing."""
        if not endpoint:
            return cls()
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise RuntimeError("--otlp-traces-endpoint needs the OpenTelemetry SDK: "
                               "pip install 'cot-server[otel]'") from exc
        named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
        provider = TracerProvider(resource=Resource.create(named))
        provider.add_span_processor(BatchSpanProcessor(span_exporter(endpoint)))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start(self, name: str, headers: Mapping[str, str], attributes: Attributes
              ) -> RequestSpan | None:
        """A server span for one request, continuing the trace its `traceparent` names."""
        if self._tracer is None:
            return None
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract(carrier=dict(headers))
        span = self._tracer.start_span(name, context=context, kind=SpanKind.SERVER,
                                       attributes=dict(attributes))
        return RequestSpan(span, self._tracer)

    def shutdown(self) -> None:
        """Export what is left and stop (blocking: call it off the event loop)."""
        if self.provider is not None:
            self.provider.shutdown()


def span_exporter(endpoint: str) -> Any:
    protocol = os.environ.get(PROTOCOL_VARIABLE, "grpc")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=endpoint)
    raise ValueError(f"{PROTOCOL_VARIABLE}={protocol!r}: grpc or http/protobuf")


# ------------------------------------------------------------- the request being served

_CURRENT: contextvars.ContextVar[RequestSpan | None] = contextvars.ContextVar(
    "request_span", default=None)


def bind(span: RequestSpan | None) -> contextvars.Token[RequestSpan | None]:
    return _CURRENT.set(span)


def unbind(token: contextvars.Token[RequestSpan | None]) -> None:
    _CURRENT.reset(token)


def current() -> RequestSpan | None:
    return _CURRENT.get()


def set_attributes(attributes: Attributes) -> None:
    request = current()
    if request is not None:
        request.set(attributes)


def add_usage(prompt_tokens: int, completion_tokens: int) -> None:
    request = current()
    if request is not None:
        request.add_usage(prompt_tokens, completion_tokens)


def record_span(name: str, start_ns: int, end_ns: int | None = None,
                attributes: Attributes | None = None) -> None:
    """A finished child span of the request's span, from `start_ns` to `end_ns` (now if None;
    both time.time_ns())."""
    request = current()
    if request is not None:
        request.child(name, attributes, start_ns).end(end_time=end_ns or time.time_ns())


@contextlib.contextmanager
def span(name: str, attributes: Attributes | None = None, parent: Any = None
         ) -> Iterator[Any]:
    """A child span of the request's span (or of `parent`, a span this yielded) around a
    block; yields the span (None when tracing is off), which the block may add attributes to.
    An exception leaving the block is recorded on it."""
    request = current()
    if request is None:
        yield None
        return
    child = request.child(name, attributes, parent=parent)
    try:
        yield child
    except BaseException as exc:
        from opentelemetry.trace import Status, StatusCode

        child.record_exception(exc)
        child.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        child.end()


def trace_headers() -> dict[str, str]:
    """The W3C trace-context headers of the request's span ({} when there is none): what
    vLLM's `generate(..., trace_headers=...)` takes, so the engine's spans join the trace."""
    request = current()
    if request is None:
        return {}
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    headers: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(headers, trace.set_span_in_context(request.span))
    return headers
