"""Fixtures of the load-test tests. The e2e load runs go against our own real server process
(the session-wide `server` fixture from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MODEL_DIR, ServerProcess

OpenAIServer = ServerProcess


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    if not (MODEL_DIR / "config.json").exists():
        from server.tiny_model import install_trained_model

        install_trained_model(MODEL_DIR)
    return MODEL_DIR


@pytest.fixture(scope="session")
def openai_server(server: ServerProcess) -> ServerProcess:
    """The server the e2e load tests run against."""
    return server
