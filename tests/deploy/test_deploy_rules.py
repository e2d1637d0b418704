"""Properties the rendered chart must keep: probes on the server's own routes, a grace period
that covers the drain, GPU scheduling, shared memory, a locked-down pod, the pinned image, a
ConfigMap the server's Settings accept, and container args the server's own parser (vLLM's
engine flags included) accepts."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import helm_python as helm
import pytest
import yaml

from server.api.health import router as health_router
from server.cli import build_parser, settings_from
from server.config import DEFAULT_TINY_MODEL, Settings
from server.engine import engine_args
from tests.deploy.deploytools import (
    CHART,
    REPO,
    dockerfile_stages,
    find,
    one,
    pyproject,
    render,
)

RUNTIME = ["gpu", "cpu", "llava-cot", "gpu-all", "cpu-keda"]
# Options every variant sets (served_model_name may stay at the default).
REQUIRED_OPTIONS = ["model", "stage_mode", "stage_schema", "stage_max_tokens", "beam_width",
                    "selector", "drain_timeout", "host", "port"]
SERVER_ROUTES = {route.path for route in health_router.routes}
IMAGE_STAGES = {s.name: s for s in dockerfile_stages((REPO / "Dockerfile").read_text())[1]}


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = pod(docs)["containers"]
    assert len(containers) == 1
    return containers[0]


def server_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    name = container(docs)["envFrom"][0]["configMapRef"]["name"]
    config_map = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"] == name)
    return config_map["data"]


def engine_flags(docs: list[dict[str, Any]]) -> list[str]:
    """The container args: vLLM engine flags after the entrypoint `cot-server serve`."""
    return [str(arg) for arg in container(docs).get("args", [])]


def flag_value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def drain_timeout(docs: list[dict[str, Any]]) -> float:
    default = Settings.model_fields["drain_timeout"].default
    return float(server_env(docs).get("COT_SERVER_DRAIN_TIMEOUT", default))


@pytest.mark.parametrize("variant", RUNTIME)
def test_probes_use_the_servers_routes(rendered: dict, variant: str) -> None:
    c = container(rendered[variant])
    assert c["startupProbe"]["httpGet"]["path"] == "/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"/ready", "/health"} <= SERVER_ROUTES
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
        assert c[probe]["httpGet"]["port"] in ports
    assert ports["http"] == int(server_env(rendered[variant])["COT_SERVER_PORT"]) == 8000


@pytest.mark.parametrize("variant", RUNTIME)
def test_startup_probe_allows_a_long_model_load(rendered: dict, variant: str) -> None:
    startup = container(rendered[variant])["startupProbe"]
    window = startup["periodSeconds"] * startup["failureThreshold"]
    assert window >= 30 * 60
    deployment = one(rendered[variant], "Deployment")
    assert deployment["spec"]["progressDeadlineSeconds"] > window


@pytest.mark.parametrize("variant", RUNTIME)
def test_grace_period_covers_prestop_and_drain(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    command = container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop >= 5
    assert pod(docs)["terminationGracePeriodSeconds"] >= pre_stop + drain_timeout(docs)


@pytest.mark.parametrize("drain,pre_stop", [(120, 20), (7.5, 3), (None, 10)])
def test_grace_period_follows_the_drain_timeout(drain: float | None, pre_stop: int) -> None:
    docs = render([], {"server": {"drain_timeout": drain},
                       "lifecycle": {"preStopSleepSeconds": pre_stop}})
    assert container(docs)["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(pre_stop)]
    expected = Settings.model_fields["drain_timeout"].default if drain is None else drain
    assert drain_timeout(docs) == expected
    assert pod(docs)["terminationGracePeriodSeconds"] >= pre_stop + expected


@pytest.mark.parametrize("variant", ["gpu", "llava-cot", "gpu-all"])
def test_gpu_variant_requests_gpus_on_gpu_nodes(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    limits = container(docs)["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == int(flag_value(engine_flags(docs),
                                                      "--tensor-parallel-size") or 1)
    assert limits["nvidia.com/gpu"] >= 1
    assert server_env(docs)["COT_SERVER_DEVICE"] == "cuda"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod(docs)["tolerations"])
    assert pod(docs)["nodeSelector"]


@pytest.mark.parametrize("sizes,gpus", [({"tensor-parallel-size": 2}, 2),
                                        ({"tensor-parallel-size": 2,
                                          "pipeline-parallel-size": 2}, 4),
                                        ({"tensor-parallel-size": None,
                                          "data-parallel-size": 3}, 3)])
def test_gpu_limit_follows_the_parallel_sizes(sizes: dict[str, int | None], gpus: int) -> None:
    docs = render([], {"engine": sizes})
    assert container(docs)["resources"]["limits"]["nvidia.com/gpu"] == gpus


@pytest.mark.parametrize("variant", ["cpu", "cpu-keda"])
def test_cpu_variant_asks_for_no_gpu(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    assert "nvidia.com/gpu" not in yaml.safe_dump(one(docs, "Deployment"))
    assert server_env(docs)["COT_SERVER_DEVICE"] == "cpu"


@pytest.mark.parametrize("variant", RUNTIME)
def test_shm_is_a_memory_backed_empty_dir(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    mount = next(m for m in container(docs)["volumeMounts"] if m["mountPath"] == "/dev/shm")
    volume = next(v for v in pod(docs)["volumes"] if v["name"] == mount["name"])
    assert volume["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize("variant", RUNTIME)
def test_pod_is_locked_down(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    p, c = pod(docs), container(docs)
    assert p["securityContext"]["runAsNonRoot"] is True
    assert p["securityContext"]["runAsUser"] > 0
    assert p["enableServiceLinks"] is False
    assert p["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("variant", RUNTIME)
def test_every_path_the_server_writes_is_a_mounted_volume(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    c = container(docs)
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = [PurePosixPath(m["mountPath"]) for m in c["volumeMounts"]]
    image = IMAGE_STAGES["cpu" if variant.startswith("cpu") else "gpu"]
    writable = [env["HF_HOME"], env["XDG_CACHE_HOME"], "/tmp", image.env()["HOME"]]
    if server_env(docs)["COT_SERVER_MODEL"] == DEFAULT_TINY_MODEL:  # built at start-up
        writable.append(f"{image.last('WORKDIR').args}/{DEFAULT_TINY_MODEL}")
    for path in map(PurePosixPath, writable):
        assert any(path == m or m in path.parents for m in mounts), f"{path} is read-only"


def test_model_cache_is_a_persistent_volume_claim(rendered: dict) -> None:
    docs = rendered["gpu"]
    c = container(docs)
    hf_home = PurePosixPath(next(e["value"] for e in c["env"] if e["name"] == "HF_HOME"))
    mount = next(m for m in c["volumeMounts"] if PurePosixPath(m["mountPath"]) in hf_home.parents)
    volume = next(v for v in pod(docs)["volumes"] if v["name"] == mount["name"])
    claim = one(docs, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


@pytest.mark.parametrize("variant", RUNTIME)
def test_hub_token_comes_from_a_secret(rendered: dict, variant: str) -> None:
    env = {e["name"]: e for e in container(rendered[variant])["env"]}
    assert "secretKeyRef" in env["HF_TOKEN"]["valueFrom"]
    assert "value" not in env["HF_TOKEN"]


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_image_tag_matches_the_pinned_vllm(rendered: dict, variant: str,
                                           vllm_version: str) -> None:
    image = container(rendered[variant])["image"]
    tag = image.rpartition(":")[2]
    version = pyproject()["project"]["version"]
    assert tag == f"{version}-vllm{vllm_version}" + ("-cpu" if variant == "cpu" else "")
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"] == version


def test_llava_cot_image_uses_a_vllm_that_still_has_mllama(rendered: dict) -> None:
    tag = container(rendered["llava-cot"])["image"].rpartition("-vllm")[2]
    assert tuple(int(x) for x in tag.split(".")) <= (0, 10, 2)
    assert server_env(rendered["llava-cot"])["COT_SERVER_MODEL"] == "Xkev/Llama-3.2V-11B-cot"


@pytest.mark.parametrize("variant", RUNTIME)
def test_configmap_is_a_valid_server_configuration(rendered: dict, variant: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = server_env(rendered[variant])
    fields = {f"COT_SERVER_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= fields, f"not server options: {set(data) - fields}"
    for name in REQUIRED_OPTIONS:
        assert f"COT_SERVER_{name.upper()}" in data, f"{name} missing from the ConfigMap"
    for key in list(fields):
        monkeypatch.delenv(key, raising=False)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # raises on a value the server would refuse
    assert settings.host == "0.0.0.0" and settings.port == 8000


@pytest.fixture(scope="module")
def serve_parser() -> Any:
    return build_parser()


@pytest.mark.parametrize("variant", RUNTIME)
def test_container_args_are_engine_flags_the_server_accepts(
        rendered: dict, variant: str, serve_parser: Any) -> None:
    """The server's own parser (with vLLM's) reads the args, and vLLM's AsyncEngineArgs takes
    what it read; no engine is started."""
    args = engine_flags(rendered[variant])
    settings = settings_from(serve_parser.parse_args(["serve", *args]))
    assert set(settings.engine) == {a[2:].replace("no-", "", 1).replace("-", "_")
                                    for a in args if a.startswith("--")}
    built = engine_args(settings, on_cpu=variant.startswith("cpu"))
    assert built.enable_prefix_caching is True
    if variant.startswith("cpu"):  # the server's CPU defaults, not the GPU values'
        assert (built.gpu_memory_utilization, built.enforce_eager) == (0.3, True)
    else:
        assert built.enforce_eager is (variant == "llava-cot")


def test_engine_values_render_as_vllm_flags() -> None:
    args = engine_flags(render([], {"engine": {
        "max-num-batched-tokens": "4k", "kv-cache-dtype": "fp8", "enforce-eager": True,
        "mm-processor-kwargs": {"max_pixels": 1003520}, "allowed-media-domains": ["a.org"],
        "dtype": None}}))
    assert flag_value(args, "--max-num-batched-tokens") == "4k"
    assert flag_value(args, "--kv-cache-dtype") == "fp8"
    assert "--enforce-eager" in args and "--no-enforce-eager" not in args
    assert flag_value(args, "--mm-processor-kwargs") == '{"max_pixels":1003520}'
    assert flag_value(args, "--allowed-media-domains") == "a.org"
    assert "--dtype" not in args


SECRET_OPTIONS = {"api_key", "metrics_api_key"}  # from Secrets, never from the ConfigMap


def test_values_list_every_server_option() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["server"]
    assert set(values) | SECRET_OPTIONS == set(Settings.flag_fields()), \
        "values.yaml `server` and server/config.py list different options"
    assert not set(values) & SECRET_OPTIONS
    assert values["host"] == "0.0.0.0" and values["port"] == 8000


def test_api_keys_come_from_secrets_and_the_scraper_sends_the_metrics_key() -> None:
    docs = render([], {"apiKeys": {"secretName": "keys"},
                       "metricsApiKey": {"secretName": "mkey"},
                       "serviceMonitor": {"enabled": True}})
    assert not any("API_KEY" in name for name in server_env(docs))
    env = {e["name"]: e for e in one(docs, "Deployment")["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert env["COT_SERVER_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "keys"
    assert env["COT_SERVER_METRICS_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mkey"
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["authorization"]["credentials"]["name"] == "mkey"


def test_optional_options_reach_the_configmap_and_the_args_when_set() -> None:
    docs = render([], {"server": {"served_model_name": "cot,cot-alias"},
                       "engine": {"max-model-len": 4096}})
    assert server_env(docs)["COT_SERVER_SERVED_MODEL_NAME"] == "cot,cot-alias"
    assert flag_value(engine_flags(docs), "--max-model-len") == "4096"


def test_rollout_never_drops_below_the_desired_replicas(rendered: dict) -> None:
    spec = one(rendered["gpu"], "Deployment")["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] >= 1


@pytest.mark.parametrize("variant", ["gpu-all", "cpu-keda"])
def test_selectors_match_the_pods(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    deployment = one(docs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in
                                                        container(docs)["ports"]}
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() \
        <= labels.items()
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and "/metrics" in SERVER_ROUTES
    assert "replicas" not in deployment["spec"], "an autoscaler owns the replica count"


def test_hpa_and_keda_together_are_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match="not both"):
        render([], {"autoscaling": {"enabled": True}, "keda": {"enabled": True}})


def documented_values() -> set[str]:
    """Keys named in the first column of the values table in docs/deployment.md (with their
    parents); after `a.b`, a bare `c` in the same cell stands for `a.c`."""
    names = set()
    for line in (REPO / "docs" / "deployment.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        tokens = re.findall(r"`([\w.*]+)`", line.split("|")[1])
        prefix = tokens[0].rpartition(".")[0]
        for token in tokens:
            name = token if "." in token or not prefix else f"{prefix}.{token}"
            parts = name.split(".")
            names |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return names


def test_every_value_is_documented() -> None:
    documented = documented_values()
    free_form = {"server", "engine", "resources", "podSecurityContext", "securityContext",
                 "nodeSelector", "affinity", "podAnnotations", "podLabels", "scratchDirs",
                 "probes"}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in values.items():
        if isinstance(value, dict) and key not in free_form and value:
            missing = {f"{key}.{sub}" for sub in value} - documented
        else:
            missing = set() if {key, f"{key}.*"} & documented else {key}
        assert not missing, f"not in the values table of docs/deployment.md: {missing}"
