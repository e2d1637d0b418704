"""The Grafana dashboard and the PrometheusRule alerts query only what the server exports: every
metric name in their PromQL, and every label they select on or group by, is read against the
registry of server/metrics.py (`Metrics().registry`, each labelled metric touched once so that
its samples show). The chart ships the dashboard file unchanged and renders the rules as its
values say."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import Metrics
from tests.deploy.deploytools import CHART, NAMESPACE, find, one, render

DASHBOARD = CHART / "dashboards" / "cot-server.json"
# labels Prometheus adds to every scraped series (the ServiceMonitor's among them)
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
SYNTHETIC = {"up": set()}  # series Prometheus makes itself, not the server
FUNCTIONS_AND_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                          "or", "unless", "bool", "offset", "inf", "nan"}
ALERTS = {"CotServerHighErrorRate", "CotServerHighLatency", "CotServerEngineDead",
          "CotServerNotReady"}


def exported() -> dict[str, set[str]]:
    """Every sample name the server exports, with its label names."""
    metrics = Metrics()
    for value in vars(metrics).values():
        names = getattr(value, "_labelnames", ())
        if names:
            value.labels(*("x" for _ in names))
    text = generate_latest(metrics.registry).decode()
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


EXPORTED = exported()


def selectors(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """(metric name, label names matched) of every series selector in a PromQL expression,
    and the label names it groups by."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    grouping: set[str] = set()
    for clause in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*"
                              r"\(([^)]*)\)", expr):
        grouping |= {name.strip() for name in clause.group(1).split(",") if name.strip()}
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ",
                  expr)
    found: list[tuple[str, set[str]]] = []

    def matched(block: re.Match[str]) -> str:
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"", block.group(2)))
        found.append((block.group(1), labels))
        return " "

    expr = re.sub(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", matched, expr)
    expr = re.sub(r'"[^"]*"', " ", expr)
    for word in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        if word.group(2) is None and word.group(1).lower() not in FUNCTIONS_AND_KEYWORDS:
            found.append((word.group(1), set()))
    return found, grouping


def problems(expr: str) -> list[str]:
    """What an expression asks of the server that it does not export."""
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    found, grouping = selectors(expr)
    assert found, f"no metric in {expr!r}"
    known = {**EXPORTED, **SYNTHETIC}
    out = [f"{name}: not exported" for name, _ in found if name not in known]
    labels = set(TARGET_LABELS)
    for name, matched in found:
        have = known.get(name, set()) | TARGET_LABELS
        labels |= have
        out += [f"{name}: no label {label!r}" for label in matched - have]
    out += [f"grouped by {label!r}, which none of its metrics has"
            for label in grouping - labels]
    return out


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", ())]


def test_the_checker_catches_what_the_server_does_not_export() -> None:
    assert problems('sum by (route) (rate(cot_server_requests_total{job=~"$job"}[5m]))') == []
    assert problems("rate(cot_server_made_up_total[5m])") == [
        "cot_server_made_up_total: not exported"]
    assert problems('cot_server_requests_total{kind="x"}') == [
        "cot_server_requests_total: no label 'kind'"]
    assert problems("sum by (selector) (cot_server_requests_in_flight)") == [
        "grouped by 'selector', which none of its metrics has"]
    assert problems("cot_server_requests_total") == []  # no selector braces at all
    assert problems("cot_server_request_duration_seconds") == [
        "cot_server_request_duration_seconds: not exported"]  # a histogram's base name


def test_the_dashboard_is_grafana_json_with_a_datasource_and_job_variable() -> None:
    board = dashboard()
    assert board["uid"] == "cot-server" and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert problems(variables["job"]["query"]["query"].removeprefix(
        "label_values(").rsplit(",", 1)[0]) == []
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and panel["title"] and panel["description"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))


def test_every_dashboard_query_reads_metrics_and_labels_the_server_exports() -> None:
    board = dashboard()
    for expr in queries(board):
        assert '{job=~"$job"' in expr.replace(" ", ""), f"not filtered by job: {expr}"
        assert problems(expr) == [], expr


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    used = {name for expr in queries(dashboard()) for name, _ in selectors(expr)[0]}
    wanted = {
        "request rate": "cot_server_requests_total",
        "latency": "cot_server_request_duration_seconds_bucket",
        "time to first token": "cot_server_time_to_first_token_seconds_bucket",
        "search width": "cot_server_search_requests_total",
        "selector decisions": "cot_server_stage_selections_total",
        "prefix-cache share": "cot_server_search_cached_tokens_total",
        "queue": "cot_server_requests_waiting",
    }
    missing = {what for what, metric in wanted.items() if metric not in used}
    assert not missing, missing
    grouped = {label for expr in queries(dashboard()) for label in selectors(expr)[1]}
    assert {"beam_width", "selected_by", "route", "status"} <= grouped


def test_the_chart_ships_the_dashboard_file_for_grafanas_sidecar() -> None:
    docs = render([], {"grafanaDashboard": {"enabled": True, "folder": "Inference"}})
    config_map = next(d for d in find(docs, "ConfigMap")
                      if d["metadata"]["name"].endswith("-dashboard"))
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Inference"}
    assert json.loads(config_map["data"]["cot-server.json"]) == dashboard()
    assert not [d for d in find(render([]), "ConfigMap")
                if d["metadata"]["name"].endswith("-dashboard")]  # off by default


def rules(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    docs = render([], {"prometheusRule": {"enabled": True, **(values or {})},
                       "serviceMonitor": {"enabled": True}})
    rule = one(docs, "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    return {r["alert"]: r for r in group["rules"]}


def test_the_alerts_query_what_the_server_exports_for_this_release_only() -> None:
    alerts = rules()
    assert set(alerts) == ALERTS
    service = one(render([], {"serviceMonitor": {"enabled": True}}), "Service")
    for name, alert in alerts.items():
        assert problems(alert["expr"]) == [], name
        for metric, matched in selectors(alert["expr"])[0]:
            assert {"namespace", "service"} <= matched, (name, metric)
        assert f'namespace="{NAMESPACE}"' in alert["expr"]
        assert f'service="{service["metadata"]["name"]}"' in alert["expr"]
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", alert["for"])
    assert alerts["CotServerEngineDead"]["labels"]["severity"] == "critical"
    assert 'status=~"5.."' in alerts["CotServerHighErrorRate"]["expr"]
    assert 'state="engine_dead"' in alerts["CotServerEngineDead"]["expr"]
    assert "up{" in alerts["CotServerEngineDead"]["expr"]  # the server does not answer


def test_alert_thresholds_come_from_the_values() -> None:
    alerts = rules({"errorRatio": 0.1, "errorFor": "3m", "latencyP95Seconds": 30,
                    "notReadyFor": "20m", "labels": {"release": "prometheus"}})
    assert alerts["CotServerHighErrorRate"]["expr"].endswith("> 0.1")
    assert alerts["CotServerHighErrorRate"]["for"] == "3m"
    assert alerts["CotServerHighLatency"]["expr"].endswith("> 30")
    assert alerts["CotServerNotReady"]["for"] == "20m"


@pytest.mark.parametrize("period, threshold, expected", [(10, 180, "35m"), (10, 60, "15m")])
def test_not_ready_waits_out_the_startup_probe_by_default(period, threshold, expected) -> None:
    docs = render([], {"prometheusRule": {"enabled": True}, "probes": {"startup": {
        "periodSeconds": period, "failureThreshold": threshold, "timeoutSeconds": 5}}})
    (group,) = one(docs, "PrometheusRule")["spec"]["groups"]
    not_ready = next(r for r in group["rules"] if r["alert"] == "CotServerNotReady")
    assert not_ready["for"] == expected
