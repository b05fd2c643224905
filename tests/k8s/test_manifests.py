"""Every manifest under k8s/ validates offline, in the base and in both overlays.

Core kinds against Kubernetes' own schemas (kubernetes-validate, strict: unknown fields fail); the
RayService against KubeRay's CRD schema (k8s/schemas/kuberay, made strict the same way); the Serve
config embedded in it against Ray's ServeDeploySchema and against deploy/serve-*.yaml, which it must
repeat; the PodMonitor and PrometheusRule against the subset schemas in k8s/schemas, and every metric
an alert uses against docs/metrics.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from services.cluster import catalog
from services.cluster.app import KinoAppArgs
from tests.k8s.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
SERVE_CONFIG = {"base": "serve-gpu.yaml", "dev": "serve-cpu.yaml", "prod": "serve-gpu.yaml"}
CUSTOM_SCHEMAS = {
    ("ray.io/v1", "RayService"): K8S / "schemas" / "kuberay" / "rayservice-v1.schema.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): K8S
    / "schemas"
    / "monitoring.coreos.com"
    / "podmonitor-v1.schema.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): K8S
    / "schemas"
    / "monitoring.coreos.com"
    / "prometheusrule-v1.schema.json",
}


def strict(schema):
    """A CRD schema that rejects unknown fields, as `kubectl apply --validate=strict` does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module", params=list(OVERLAYS))
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(OVERLAYS[request.param])


def _custom_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = json.loads(CUSTOM_SCHEMAS[(api_version, kind)].read_text())
    return jsonschema.Draft7Validator(strict(schema) if kind == "RayService" else schema)


def test_every_manifest_validates(rendered):
    name, documents = rendered
    kinds = set()
    for document in documents:
        key = (document["apiVersion"], document["kind"])
        kinds.add(document["kind"])
        if key in CUSTOM_SCHEMAS:
            errors = sorted(_custom_validator(*key).iter_errors(document), key=lambda e: list(e.path))
            assert not errors, f"{name} {document['kind']}: " + "; ".join(
                f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
            )
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert {
        "Namespace",
        "PersistentVolumeClaim",
        "RayService",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PodMonitor",
        "PrometheusRule",
    } <= kinds


def test_a_typo_fails_validation():
    documents = render(OVERLAYS["base"])
    rayservice = next(d for d in documents if d["kind"] == "RayService")
    rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplica"] = 1
    assert list(_custom_validator("ray.io/v1", "RayService").iter_errors(rayservice))
    pdb = next(d for d in documents if d["kind"] == "PodDisruptionBudget")
    pdb["spec"]["maxUnavailabel"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pdb, KUBERNETES_VERSION, strict=True)


def _rayservice(documents: list[dict]) -> dict:
    [rayservice] = [d for d in documents if d["kind"] == "RayService"]
    return rayservice


def test_the_embedded_serve_config_is_deploys_and_valid(rendered):
    name, documents = rendered
    embedded = yaml.safe_load(_rayservice(documents)["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load((ROOT / "deploy" / SERVE_CONFIG[name]).read_text())
    ServeDeploySchema.model_validate(embedded)


@pytest.mark.parametrize("config", ["serve-cpu.yaml", "serve-gpu.yaml"])
def test_serve_configs_name_every_service_with_valid_builder_args(config):
    document = yaml.safe_load((ROOT / "deploy" / config).read_text())
    ServeDeploySchema.model_validate(document)
    apps = {app["name"]: app for app in document["applications"]}
    assert set(apps) == {spec.name for spec in catalog.ALL_SERVICES}
    assert set(document["grpc_options"]["grpc_servicer_functions"]) == {
        spec.add_servicer_function for spec in catalog.ALL_SERVICES
    }
    for name, app in apps.items():
        assert app["import_path"] == "services.cluster.app:build_app"
        args = KinoAppArgs.model_validate(app["args"])
        assert args.service == name
        args.resolve_settings()
        [deployment] = app["deployments"]
        assert deployment["name"] == name
        section = catalog.BY_NAME[name].settings_section
        settings_type = type(getattr(args.resolve_settings(), section))
        settings_type.model_validate(deployment.get("user_config") or {})


def test_gpu_pools_ask_for_gpus_on_gpu_nodes(rendered):
    name, documents = rendered
    groups = {
        g["groupName"]: g for g in _rayservice(documents)["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    }
    if name == "dev":
        assert set(groups) == {"cpu"}
        assert "nvidia.com/gpu" not in json.dumps(_rayservice(documents))
        return
    assert set(groups) == {"cpu", "denoiser", "audio"}
    for pool in ("denoiser", "audio"):
        spec = groups[pool]["template"]["spec"]
        [worker] = [c for c in spec["containers"] if c["name"] == "ray-worker"]
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    serve = yaml.safe_load(_rayservice(documents)["spec"]["serveConfigV2"])
    actor_options = {app["name"]: app["deployments"][0]["ray_actor_options"] for app in serve["applications"]}
    assert actor_options["VideoDenoiser"]["num_gpus"] == 1
    assert actor_options["AudioGenerator"]["num_gpus"] == 0.5
    assert "num_gpus" not in actor_options["TextEncoder"] and "num_gpus" not in actor_options["FeedRanker"]
    for pool, resource in (
        ("cpu", "kino_cpu_pool"),
        ("denoiser", "kino_denoiser_pool"),
        ("audio", "kino_audio_pool"),
    ):
        assert resource in groups[pool]["rayStartParams"]["resources"]


def test_images_follow_the_overlay(rendered):
    name, documents = rendered
    images = set(re.findall(r'"image": "([^"]+)"', json.dumps(documents)))
    expected = {"base": "latest", "dev": "dev", "prod": "0.1.0"}[name]
    assert images == {f"ghcr.io/kino-video/kino:{expected}"}


def test_the_grpc_port_is_on_the_serve_service_and_every_pod_is_scraped(rendered):
    _, documents = rendered
    rayservice = _rayservice(documents)
    ports = {p["name"]: p["port"] for p in rayservice["spec"]["serveService"]["spec"]["ports"]}
    assert ports["grpc"] == 9000
    monitor = next(d for d in documents if d["kind"] == "PodMonitor")
    scraped_ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    cluster = rayservice["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for template in templates:
        assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        pod_ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert scraped_ports <= pod_ports
        assert template["spec"]["shareProcessNamespace"] is True


def test_secrets_are_referenced_not_embedded(rendered):
    _, documents = rendered
    assert not [d for d in documents if d["kind"] == "Secret"]
    text = json.dumps(_rayservice(documents))
    assert '"secretKeyRef": {"key": "database-url", "name": "kino-secrets"}' in text.replace(
        '{"name": "kino-secrets", "key": "database-url"}', '{"key": "database-url", "name": "kino-secrets"}'
    )
    assert '"secretName": "kino-signing"' in text


def test_disruption_budgets_select_real_pods(rendered):
    _, documents = rendered
    cluster = _rayservice(documents)["spec"]["rayClusterConfig"]
    labels = [cluster["headGroupSpec"]["template"]["metadata"]["labels"]] + [
        g["template"]["metadata"]["labels"] for g in cluster["workerGroupSpecs"]
    ]
    for pdb in (d for d in documents if d["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        selected = [pod for pod in labels if selector.items() <= pod.items()]
        if pdb["metadata"]["name"] in ("kino-denoiser", "kino-audio") and len(labels) == 2:
            assert not selected  # dev has no GPU pools; the budget is harmless
        else:
            assert len(selected) == 1, pdb["metadata"]["name"]


def test_alerts_use_documented_metrics():
    documents = render(OVERLAYS["base"])
    rules = next(d for d in documents if d["kind"] == "PrometheusRule")
    documented = set(re.findall(r"`((?:kino|ray)_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text()))
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            used = set(re.findall(r"\b((?:kino|ray)_[a-z0-9_]+?)(?:_bucket|_sum|_count)?\b", rule["expr"]))
            assert used, rule["alert"]
            assert used <= documented, (rule["alert"], used - documented)
            assert f"### {rule['alert']}" in runbook, rule["alert"]
            assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
