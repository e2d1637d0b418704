"""Logging set-up, `--log-format`: `text` (one readable line per record, the default) or `json`
(one JSON object per line: time, level, logger, message, request_id, and the exception where
there is one). Every record carries the id of the HTTP request being served, where there is one
(server/request_id.py). In JSON, uvicorn's records go through the same handler, and vLLM's, in
this process and in its engine processes, through the same formatter: vLLM applies a logging
config of its own when its engine starts, so it is handed one (VLLM_LOGGING_CONFIG_PATH, unless
the environment names one already)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from typing import Any, Literal

from server.request_id import current_request_id

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# loggers that keep handlers of their own, which in JSON would print other lines beside ours
THIRD_PARTY = ("uvicorn", "uvicorn.error", "uvicorn.access", "vllm")
VLLM_CONFIG_VARIABLE = "VLLM_LOGGING_CONFIG_PATH"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def handler(log_format: LogFormat) -> logging.Handler:
    out = logging.StreamHandler()
    out.addFilter(RequestIdFilter())
    out.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return out


def vllm_logging_config(level: str) -> dict[str, Any]:
    """The dictConfig vLLM applies in each of its processes for JSON logs: ours."""
    json_handler = {"class": "logging.StreamHandler", "formatter": "json",
                    "filters": ["request_id"], "stream": "ext://sys.stdout"}
    return {"version": 1, "disable_existing_loggers": False,
            "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
            "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
            "handlers": {"json": json_handler},
            "root": {"handlers": ["json"], "level": level.upper()},
            "loggers": {"vllm": {"handlers": ["json"], "level": level.upper(),
                                 "propagate": False}}}


def configure_logging(level: str, log_format: LogFormat) -> None:
    """One handler on the root logger; in JSON, the third-party loggers that print through
    handlers of their own (vLLM's, uvicorn's) hand their records to it instead, and vLLM is
    given the same set-up for its engine processes."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(log_format))
    root.setLevel(level.upper())
    if log_format == "json":
        for name in THIRD_PARTY:
            logger = logging.getLogger(name)
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
        if not os.environ.get(VLLM_CONFIG_VARIABLE):
            descriptor, path = tempfile.mkstemp(prefix="cot-server-vllm-logging-",
                                                suffix=".json")
            with os.fdopen(descriptor, "w") as out:
                json.dump(vllm_logging_config(level), out)
            os.environ[VLLM_CONFIG_VARIABLE] = path
