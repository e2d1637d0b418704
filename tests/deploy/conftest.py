"""Session fixtures of the deployment tests (helpers live in deploytools.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.deploytools import VARIANTS, pinned, render


@pytest.fixture(scope="session")
def vllm_version() -> str:
    return pinned("gpu", "vllm")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(files, extra) for name, (files, extra) in VARIANTS.items()}

