"""docker-compose.yml: KRaft Kafka, health-gated start-up order, a required auth secret, one image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.catalog import SERVICES

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CHECKOUT / "docker-compose.yml").read_text())
    return document


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def test_every_dependency_waits_for_a_condition(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must be a mapping with conditions"
        for dependency, rule in depends_on.items():
            assert rule.get("condition") in {"service_healthy", "service_completed_successfully"}, (
                f"{name} -> {dependency}: {rule}"
            )


def test_the_services_start_after_healthy_infrastructure_and_a_successful_migration(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    for name in SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["kafka"]["condition"] == "service_healthy"
        assert depends_on["postgres"]["condition"] == "service_healthy"
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert "/health/ready" in " ".join(services[name]["healthcheck"]["test"])
    assert "contacts migrate" in " ".join(services["migrate"]["command"])
    assert "contacts topics" in " ".join(services["migrate"]["command"])


def test_kafka_runs_in_kraft_mode_with_a_health_check(compose: dict[str, Any]) -> None:
    kafka = _services(compose)["kafka"]
    env = kafka["environment"]

    assert kafka["image"] == "apache/kafka:3.9.1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert "CONTROLLER://" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert str(env["KAFKA_NODE_ID"]) in env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_postgres_has_a_readiness_check(compose: dict[str, Any]) -> None:
    postgres = _services(compose)["postgres"]

    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_the_auth_secret_is_required_and_production_mode_is_on(compose: dict[str, Any]) -> None:
    for name in (*SERVICES, "migrate"):
        env = _services(compose)[name]["environment"]
        assert env["CONTACTS_AUTH_SECRET"].startswith("${CONTACTS_AUTH_SECRET:?"), name
        assert env["CONTACTS_ENVIRONMENT"] == "production", name
        assert env["CONTACTS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name


def test_one_image_built_from_the_deploy_dockerfile(compose: dict[str, Any]) -> None:
    services = _services(compose)
    images = {services[name]["image"] for name in (*SERVICES, "migrate")}

    assert len(images) == 1
    assert services["ingest"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (CHECKOUT / "deploy" / "Dockerfile").is_file()


def test_only_ingest_and_profiles_are_published(compose: dict[str, Any]) -> None:
    published = {name: service.get("ports", []) for name, service in _services(compose).items()}

    assert published["ingest"] == ["127.0.0.1:8001:8001"]
    assert published["profiles"] == ["127.0.0.1:8002:8002"]
    assert not any(ports for name, ports in published.items() if name not in {"ingest", "profiles"})
    for name in SERVICES:
        assert _services(compose)[name]["environment"][f"CONTACTS_{name.upper()}_HTTP_HOST"] == "0.0.0.0"
