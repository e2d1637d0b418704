"""The autoscalers scale on the engine's queue by default, and on nothing that is not exported:
the HPA's Pods metrics are what the prometheus-adapter rules in deploy/ serve, from series the
server or the pinned vLLM export (vLLM's names read from its own metrics module, so that a
rename in a new vLLM fails here); KEDA's queries read only such series. The admission values
follow the arithmetic of docs/deployment.md."""

from __future__ import annotations

import inspect
import re
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.deploy.deploytools import CHART, NAMESPACE, RELEASE, REPO, VARIANTS, one, render
from tests.deploy.test_deploy_monitoring import EXPORTED, TARGET_LABELS, selectors

ADAPTER = REPO / "deploy" / "prometheus-adapter-values.yaml"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
ENGINE_WAITING = "vllm:num_requests_waiting"


def vllm_exported() -> dict[str, set[str]]:
    """vLLM's own series (v1 engine), with the labels every one of them has."""
    from vllm.v1.metrics import loggers

    source = inspect.getsource(loggers)
    assert 'labelnames = ["model_name", "engine"]' in source
    return {name: {"model_name", "engine"} for name in re.findall(r'name="(vllm:\w+)"', source)}


KNOWN = {**EXPORTED, **vllm_exported()}


def adapter_rules() -> list[dict[str, Any]]:
    values = yaml.safe_load(ADAPTER.read_text())
    assert values["rules"]["default"] is False
    return list(values["rules"]["custom"])


def served_name(rule: dict[str, Any]) -> str:
    """The name prometheus-adapter serves a rule's series under (its `name` rewrite)."""
    series = re.match(r"[\w:]+", rule["seriesQuery"]).group(0)
    rewrite = rule.get("name")
    if rewrite is None:
        return series
    as_ = re.sub(r"\$\{(\d+)\}", r"\\\1", rewrite["as"])
    return re.sub(rewrite["matches"], as_, series)


def served() -> dict[str, str]:
    """Pods metric name -> the series it is computed from."""
    out = {}
    for rule in adapter_rules():
        series = re.match(r"[\w:]+", rule["seriesQuery"]).group(0)
        assert ":" not in served_name(rule), "the custom metrics API cannot carry a colon"
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
        assert "by (<<.GroupBy>>)" in rule["metricsQuery"]
        out[served_name(rule)] = series
    return out


def hpa_metrics(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    spec = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert all(m["type"] == "Pods" and m["pods"]["target"]["type"] == "AverageValue"
               for m in spec["metrics"])
    return [(m["pods"]["metric"]["name"], m["pods"]["target"]["averageValue"])
            for m in spec["metrics"]]


def keda_triggers(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    triggers = one(docs, "ScaledObject")["spec"]["triggers"]
    assert all(t["type"] == "prometheus" and t["metricType"] == "AverageValue"
               for t in triggers)
    return [(t["metadata"]["query"], t["metadata"]["threshold"]) for t in triggers]


def query_problems(query: str) -> list[str]:
    found, grouping = selectors(query)
    out = [f"{name}: not exported" for name, _ in found if name not in KNOWN]
    for name, labels in found:
        out += [f"{name}: no label {label}" for label in labels - KNOWN.get(name, set())
                - TARGET_LABELS]
    out += [f"grouped by {label}" for label in grouping - TARGET_LABELS]
    return out


def test_the_hpa_scales_on_the_engine_queue_by_default() -> None:
    docs = render([], {"autoscaling": {"enabled": True}})
    assert hpa_metrics(docs) == [("vllm_num_requests_waiting", "16")]
    assert served()["vllm_num_requests_waiting"] == ENGINE_WAITING
    assert ENGINE_WAITING in KNOWN


def test_keda_scales_on_the_engine_queue_by_default() -> None:
    docs = render(["values-cpu.yaml"], {"keda": {"enabled": True}})
    [(query, threshold)] = keda_triggers(docs)
    assert query == (f'sum({ENGINE_WAITING}{{namespace="{NAMESPACE}", '
                     f'service="{RELEASE}-cot-server"}})')
    assert threshold == "16"
    assert query_problems(query) == []


def test_every_hpa_metric_is_served_by_an_adapter_rule_from_an_exported_series() -> None:
    rules = served()
    names = {entry["name"] for entry in VALUES["autoscaling"]["metrics"].values()}
    assert names == set(rules), "values.yaml metrics and the adapter rules differ"
    for series in rules.values():
        assert series in KNOWN, f"{series} is exported by neither the server nor vLLM"
    docs = render([], {"autoscaling": {"enabled": True,
                                       "scaleOn": list(VALUES["autoscaling"]["metrics"])}})
    assert [name for name, _ in hpa_metrics(docs)] == [
        "vllm_num_requests_waiting", "vllm_kv_cache_usage_perc", "cot_server_requests_waiting"]


def test_every_keda_query_reads_exported_series_of_this_release() -> None:
    docs = render([], {"keda": {"enabled": True, "scaleOn": list(VALUES["keda"]["triggers"])}})
    triggers = keda_triggers(docs)
    assert [t for _, t in triggers] == ["16", "0.8", "4"]
    for query, _ in triggers:
        assert query_problems(query) == [], query
        assert f'namespace="{NAMESPACE}"' in query and f'service="{RELEASE}-cot-server"' in query
    assert set(VALUES["keda"]["triggers"]) == set(VALUES["autoscaling"]["metrics"])


def test_the_http_queue_stays_selectable() -> None:
    hpa = render([], {"autoscaling": {"enabled": True, "scaleOn": ["httpWaiting"]}})
    assert hpa_metrics(hpa) == [("cot_server_requests_waiting", "4")]
    keda = render([], {"keda": {"enabled": True, "scaleOn": ["httpWaiting"]}})
    assert keda_triggers(keda)[0][0].startswith("sum(cot_server_requests_waiting{")


def test_a_custom_metric_or_query_can_be_added() -> None:
    hpa = render([], {"autoscaling": {"enabled": True, "scaleOn": ["engineWaiting", "mine"],
                                      "metrics": {"mine": {"name": "my_metric", "target": 2}}}})
    assert hpa_metrics(hpa)[1] == ("my_metric", "2")
    keda = render([], {"keda": {"enabled": True, "scaleOn": ["engineWaiting"], "triggers": {
        "engineWaiting": {"query": "sum(vllm:num_requests_waiting)", "threshold": 0.5}}}})
    assert keda_triggers(keda) == [("sum(vllm:num_requests_waiting)", "0.5")]


@pytest.mark.parametrize("extra,message", [
    ({"autoscaling": {"enabled": True, "scaleOn": ["nope"]}},
     "autoscaling.metrics.nope.name must be set"),
    ({"keda": {"enabled": True, "scaleOn": ["nope"]}}, "keda.triggers.nope.query must be set"),
    ({"autoscaling": {"enabled": True, "scaleOn": []}}, "at least one metric"),
    ({"autoscaling": {"enabled": True, "metrics": {"engineWaiting": {"target": None}}}},
     "engineWaiting.target must be set"),
    ({"keda": {"enabled": True}, "server": {"max_concurrent_sequences": 64}},
     "the engine never queues otherwise"),
])
def test_scaling_values_that_cannot_work_are_refused(extra: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render([], extra)


def test_no_engine_queue_check_where_the_numbers_are_left_to_the_defaults() -> None:
    docs = render([], {"autoscaling": {"enabled": True},
                       "server": {"max_concurrent_sequences": None},
                       "engine": {"max-num-seqs": None}})
    assert hpa_metrics(docs)[0][0] == "vllm_num_requests_waiting"


@pytest.mark.parametrize("variant", ["gpu", "llava-cot"])
def test_admission_and_targets_follow_the_documented_arithmetic(variant: str) -> None:
    """docs/deployment.md: with max-num-seqs S, S x 2 sequences running, S x 4 queued, the
    request limits equal to the sequence limits, and S / 4 waiting sequences per pod."""
    files, _ = VARIANTS[variant]
    docs = render(files, {"autoscaling": {"enabled": True}})
    deployment = one(docs, "Deployment")
    args = [str(a) for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]]
    seqs = int(args[args.index("--max-num-seqs") + 1])
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    running = int(config["COT_SERVER_MAX_CONCURRENT_SEQUENCES"])
    queued = int(config["COT_SERVER_MAX_QUEUED_SEQUENCES"])
    assert (running, queued) == (2 * seqs, 4 * seqs)
    assert int(config["COT_SERVER_MAX_CONCURRENT_REQUESTS"]) == running
    assert int(config["COT_SERVER_MAX_QUEUED_REQUESTS"]) == queued
    assert hpa_metrics(docs)[0] == ("vllm_num_requests_waiting", str(seqs // 4))
    keda = render(files, {"keda": {"enabled": True}})
    assert keda_triggers(keda)[0][1] == str(seqs // 4)


def test_the_docs_show_the_adapter_rules_as_shipped() -> None:
    text = (REPO / "docs" / "deployment.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    shipped = yaml.safe_load(ADAPTER.read_text())
    assert shipped in blocks, f"docs/deployment.md does not show {ADAPTER.name}"
