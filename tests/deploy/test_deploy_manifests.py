"""The chart renders, lints and validates offline: built-in kinds against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict), CRD kinds against deploy/schemas/, YAML by yamllint."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.deploy.deploytools import CHART, REPO, VARIANTS, merge_values, render, render_text

SCHEMAS = REPO / "deploy" / "schemas"
CRDS = {"monitoring.coreos.com/v1/ServiceMonitor": "servicemonitor_v1.json",
        "monitoring.coreos.com/v1/PrometheusRule": "prometheusrule_v1.json",
        "keda.sh/v1alpha1/ScaledObject": "scaledobject_v1alpha1.json"}


def kube_versions() -> list[str]:
    """The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest one
    kubernetes-validate knows."""
    floor = re.search(r"(\d+\.\d+)", yaml.safe_load((CHART / "Chart.yaml").read_text())
                      ["kubeVersion"]).group(1)
    return [f"{floor}.0", kubernetes_validate.latest_version()]


def validate(doc: dict[str, Any]) -> None:
    key = f"{doc['apiVersion']}/{doc['kind']}"
    if "." in doc["apiVersion"].split("/")[0] and key in CRDS:
        schema = json.loads((SCHEMAS / CRDS[key]).read_text())
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
        return
    for version in kube_versions():
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_rendered_object_is_valid(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    assert {"Deployment", "Service", "ConfigMap"} <= {d["kind"] for d in docs}
    for doc in docs:
        validate(doc)


def test_every_template_is_rendered_by_some_variant(rendered: dict) -> None:
    produced = set()
    for files, extra in VARIANTS.values():
        produced |= {PurePosixPath(path).name for path in render_text(files, extra)}
    templates = {p.name for p in (CHART / "templates").glob("*.yaml")}
    assert templates <= produced, f"never rendered, so never validated: {templates - produced}"
    kinds = {d["kind"] for docs in rendered.values() for d in docs}
    assert {"ServiceMonitor", "ScaledObject", "HorizontalPodAutoscaler", "NetworkPolicy",
            "Ingress", "PodDisruptionBudget", "PersistentVolumeClaim", "PrometheusRule"} <= kinds


@pytest.mark.parametrize("variant", ["gpu", "cpu", "llava-cot"])
def test_helm_lint_strict(variant: str) -> None:
    files, _ = VARIANTS[variant]
    values: dict[str, Any] = {}
    for name in files:
        values = merge_values(values, yaml.safe_load((CHART / name).read_text()))
    result = helm.lint(str(CHART), values, strict=True)
    problems = [m for m in result["messages"] if m["severity"] > 1] + result["errors"]
    assert not problems, problems


def yamllint_problems(text: str, path: str) -> list[str]:
    config = YamlLintConfig(file=str(REPO / "deploy" / ".yamllint"))
    return [f"{path}:{p.line}:{p.column} {p.rule} {p.message}"
            for p in linter.run(text, config, path)]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_manifests_pass_yamllint(variant: str) -> None:
    files, extra = VARIANTS[variant]
    # One stream, as `helm template` prints it.
    stream = "".join(f"---\n# Source: {path}\n{text.strip()}\n"
                     for path, text in render_text(files, extra).items())
    problems = yamllint_problems(stream, f"helm template ({variant})")
    assert not problems, "\n".join(problems)


def test_deploy_yaml_files_pass_yamllint() -> None:
    paths = [p for p in (REPO / "deploy").rglob("*") if p.suffix in {".yaml", ".yml"}
             or p.name == ".yamllint"]
    paths = [p for p in paths if "templates" not in p.parts]
    assert len(paths) >= 4
    problems = []
    for path in paths:
        problems += yamllint_problems(path.read_text(), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


def test_crd_schemas_are_valid_json_schemas() -> None:
    for name in CRDS.values():
        jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / name).read_text()))
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(CRDS.values())


# The validators reject what they should, so the checks above are not vacuous.

def test_validation_rejects_an_unknown_deployment_field() -> None:
    deployment = next(d for d in render([]) if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


@pytest.mark.parametrize("kind,path,bad", [
    ("ServiceMonitor", ["spec", "endpoints", 0, "interval"], "30 seconds"),
    ("ServiceMonitor", ["spec", "endpoints", 0, "pth"], "/metrics"),
    ("ScaledObject", ["spec", "triggers", 0, "metadata", "threshold"], 4),
    ("ScaledObject", ["spec", "maxReplicaCount"], "4"),
    ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "for"], "ten minutes"),
    ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "exp"], "up"),
])
def test_crd_schemas_reject_mistakes(rendered: dict, kind: str, path: list, bad: Any) -> None:
    doc = next(d for docs in rendered.values() for d in docs if d["kind"] == kind)
    doc = json.loads(json.dumps(doc))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)

