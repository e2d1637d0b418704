"""Helpers of the deployment tests: repository paths, the versions pinned in pyproject.toml, a
Dockerfile parser, and the Helm chart rendered offline with Helm's own Go SDK (helm-python-sdk:
no cluster, no helm binary). A missing tool makes the tests fail, never skip: the test extra
installs them."""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "cot-server"
RELEASE, NAMESPACE = "demo", "serving"

# Every optional object switched on, so that each template is rendered and validated (the
# autoscalers on every metric they offer).
EVERY_METRIC = ["engineWaiting", "kvCacheUsage", "httpWaiting"]
ALL_FEATURES: dict[str, Any] = {
    "autoscaling": {"enabled": True, "scaleOn": EVERY_METRIC},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {"enabled": True, "from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}}]},
    "ingress": {"enabled": True, "className": "nginx", "host": "cot.example.com",
                "tlsSecretName": "cot-tls"},
    "extraEnv": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}],
    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    "grafanaDashboard": {"enabled": True, "folder": "Inference"},
}
WITH_KEDA = {**ALL_FEATURES, "autoscaling": {"enabled": False},
             "keda": {"enabled": True, "scaleOn": EVERY_METRIC}}

# name -> (values files in the chart folder, inline values on top)
VARIANTS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "gpu": ([], {}),
    "cpu": (["values-cpu.yaml"], {}),
    "llava-cot": (["values-llava-cot.yaml"], {}),
    "gpu-all": ([], ALL_FEATURES),
    "cpu-keda": (["values-cpu.yaml"], WITH_KEDA),
}


def merge_values(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Like several `helm -f`: maps merge key by key, the later file wins (null included)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render_text(files: list[str], extra: dict[str, Any] | None = None) -> dict[str, str]:
    values: dict[str, Any] = {}
    for name in files:
        values = merge_values(values, yaml.safe_load((CHART / name).read_text()) or {})
    values = merge_values(values, extra or {})
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return {path: text for path, text in sorted(out.items())
            if path.endswith(".yaml") and text.strip()}


def render(files: list[str], extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    docs = []
    for text in render_text(files, extra).values():
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def pinned(extra: str, package: str) -> str:
    """The exact version `package==X` pinned in an optional-dependencies extra."""
    for requirement in pyproject()["project"]["optional-dependencies"][extra]:
        m = re.fullmatch(rf"\s*{re.escape(package)}\s*==\s*([\w.]+)\s*", requirement)
        if m:
            return m.group(1)
    raise AssertionError(f"no {package}==X pin in the {extra!r} extra of pyproject.toml")


# --- Dockerfile ---------------------------------------------------------------------------

class Instruction:
    def __init__(self, keyword: str, args: str) -> None:
        self.keyword, self.args = keyword, args

    def __repr__(self) -> str:
        return f"{self.keyword} {self.args}"


class Stage:
    def __init__(self, image: str, name: str | None) -> None:
        self.image, self.name = image, name
        self.body: list[Instruction] = []

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.body if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                out[key] = value
        return out


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comment lines dropped, as Docker reads
    them (no heredocs: the Dockerfile uses none)."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_stages(text: str, build_args: dict[str, str] | None = None
                      ) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG values, stages), with ${VAR} in FROM lines resolved like `docker build`."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in dockerfile_instructions(text):
        if ins.keyword == "FROM":
            words = ins.args.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif not stages and ins.keyword == "ARG":
            key, _, default = ins.args.partition("=")
            global_args[key] = (build_args or {}).get(key, default)
        elif stages:
            stages[-1].body.append(ins)
    return global_args, stages


def json_args(instruction: Instruction) -> list[str]:
    """The exec-form (JSON array) arguments of CMD/ENTRYPOINT/HEALTHCHECK CMD/VOLUME."""
    start = instruction.args.index("[")
    value = json.loads(instruction.args[start:])
    assert isinstance(value, list)
    return value
