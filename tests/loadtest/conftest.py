"""Fixtures of the load-test tests. The e2e load runs go against our own real server process
(the session-wide `server` fixture from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import ServerProcess

OpenAIServer = ServerProcess


@pytest.fixture(scope="session")
def openai_server(server: ServerProcess) -> ServerProcess:
    """The server the e2e load tests run against."""
    return server
