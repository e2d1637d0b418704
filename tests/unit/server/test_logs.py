"""JSON logs (server/logs.py) carry the request id bound by server/request_id.py, and engine
request ids derive from it."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
from pathlib import Path

import pytest

from server.logs import (
    THIRD_PARTY,
    VLLM_CONFIG_VARIABLE,
    configure_logging,
    handler,
    vllm_logging_config,
)
from server.request_id import (
    bind_request_id,
    current_request_id,
    engine_request_id,
    unbind_request_id,
)


@pytest.fixture
def json_lines():
    out = io.StringIO()
    json_handler = handler("json")
    json_handler.setStream(out)
    logger = logging.getLogger("test.json_logs")
    logger.addHandler(json_handler)
    logger.setLevel(logging.INFO)
    yield logger, lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    logger.removeHandler(json_handler)


def test_each_line_is_one_json_object_with_the_request_id(json_lines):
    logger, lines = json_lines
    token = bind_request_id("req-42")
    try:
        logger.info("served %s", "it")
        try:
            raise RuntimeError("engine trouble")
        except RuntimeError:
            logger.exception("failed")
    finally:
        unbind_request_id(token)
    logger.warning("outside any request \"quoted\"\nnext line")
    served, failed, outside = lines()
    assert served["message"] == "served it" and served["request_id"] == "req-42"
    assert served["level"] == "INFO" and served["logger"] == "test.json_logs"
    assert served["time"].endswith("+00:00")
    assert failed["request_id"] == "req-42" and "RuntimeError: engine trouble" in failed[
        "exception"]
    assert outside["request_id"] is None and outside["message"].endswith("next line")


def test_json_logs_route_third_party_loggers_through_the_one_handler(monkeypatch, tmp_path):
    monkeypatch.setenv(VLLM_CONFIG_VARIABLE, "")  # restored afterwards
    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate,
                  logging.getLogger(n).level) for n in THIRD_PARTY})
    try:
        logging.getLogger("vllm").addHandler(logging.StreamHandler())
        logging.getLogger("vllm").propagate = False
        configure_logging("warning", "json")
        assert len(root.handlers) == 1 and root.level == logging.WARNING
        for name in THIRD_PARTY:
            assert logging.getLogger(name).handlers == [] and logging.getLogger(name).propagate
        # vLLM, which applies a logging config of its own in each of its processes, is handed
        # one that formats as ours
        path = Path(os.environ[VLLM_CONFIG_VARIABLE])
        config = json.loads(path.read_text())
        path.unlink()
        assert config == vllm_logging_config("warning")
        out = io.StringIO()
        config["handlers"]["json"]["stream"] = out
        logger = logging.getLogger("vllm.test_logs")
        logging.config.dictConfig({**config, "root": {"level": "WARNING"}})
        token = bind_request_id("in-vllm")
        try:
            logger.warning("from vLLM")
        finally:
            unbind_request_id(token)
        line = json.loads(out.getvalue())
        assert (line["logger"], line["request_id"]) == ("vllm.test_logs", "in-vllm")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, (handlers, propagate, level) in saved[2].items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate
            logging.getLogger(name).setLevel(level)


def test_engine_request_ids_derive_from_the_http_request_id():
    assert current_request_id() is None
    alone = engine_request_id()
    assert alone.startswith("cot-") and len(alone) == 36
    token = bind_request_id("abc123")
    try:
        first, second = engine_request_id(), engine_request_id()
    finally:
        unbind_request_id(token)
    assert first.startswith("cot-abc123-") and second.startswith("cot-abc123-")
    assert first != second  # one HTTP request, many engine requests
    assert current_request_id() is None
