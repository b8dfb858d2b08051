"""docker-compose.yml, read as Compose reads it (YAML with merge keys, then interpolation of ``${...}``) and parsed
by a real Compose implementation (the ``compose-spec`` package: Rust ``compose_spec`` bindings, which refuse
unknown keys, bad durations, ports or conditions): KRaft Kafka with an internal and an external listener,
health-gated start-up, a required auth secret, one image, real-cluster Kafka settings."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from ops.catalog import SERVICES, settings_class
from shared.config import PlatformSettings
from shared.kafka_security import KafkaSecuritySettings

CHECKOUT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {"CONTACTS_AUTH_SECRET": "s" * 48}
_VARIABLE = re.compile(r"\$(?:(\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
                       r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset (or empty), as ``docker compose`` reports it."""


def interpolate(value: Any, environment: dict[str, str]) -> Any:
    """Compose's interpolation (compose-spec, "Interpolation"): ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+replacement}``, ``${VAR+replacement}``, in
    every string value."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op") or "", match.group("arg") or ""
        is_set = name in environment
        usable = is_set and (environment[name] != "" or not op.startswith(":"))
        if op.endswith("-"):
            return environment[name] if usable else arg
        if op.endswith("?"):
            if not usable:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return environment[name]
        if op.endswith("+"):
            return arg if usable else ""
        return environment.get(name, "")

    return _VARIABLE.sub(substitute, value)


def load(environment: dict[str, str], *, edit: Any = None) -> dict[str, Any]:
    document = yaml.safe_load((CHECKOUT / "docker-compose.yml").read_text())
    if edit is not None:
        edit(document)
    parsed = PyCompose.from_json(json.dumps(interpolate(document, environment)))
    parsed.validate()
    normalized: dict[str, Any] = parsed.to_dict()
    return normalized


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(ENVIRONMENT)


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _health_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]  # CMD-SHELL is normalized to the shell string
    return test if isinstance(test, str) else " ".join(test)


def _kafka_listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(","))


# --- the parser is the real thing -----------------------------------------------------------------------------------


def test_the_file_parses_and_the_parser_refuses_what_compose_refuses(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {"kafka", "postgres", "migrate", *SERVICES, "monitor", "prometheus", "grafana"}

    def bad_condition(document: dict[str, Any]) -> None:
        document["services"]["identity"]["depends_on"]["kafka"]["condition"] = "service_ready"

    def unknown_key(document: dict[str, Any]) -> None:
        document["services"]["ingest"]["healthchek"] = {"test": ["CMD", "true"]}

    def bad_duration(document: dict[str, Any]) -> None:
        document["x-health-timing"]["interval"] = "10 seconds"
        document["services"]["profiles"]["healthcheck"]["interval"] = "10 seconds"

    for edit, complaint in ((bad_condition, "unknown variant"), (unknown_key, "healthchek"),
                            (bad_duration, "duration")):
        with pytest.raises(ValueError, match=complaint):
            load(ENVIRONMENT, edit=edit)


def test_the_auth_secret_must_be_given(compose: dict[str, Any]) -> None:
    with pytest.raises(InterpolationError, match="set CONTACTS_AUTH_SECRET"):
        load({})
    for name in (*SERVICES, "migrate"):
        assert _services(compose)[name]["environment"]["CONTACTS_AUTH_SECRET"] == ENVIRONMENT["CONTACTS_AUTH_SECRET"]


def test_every_reference_resolves(compose: dict[str, Any]) -> None:
    services = _services(compose)
    volumes = set(compose["volumes"])
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount["source"]
            assert source.startswith((".", "/")) or source in volumes, f"{name}: volume {source} is not declared"


# --- start-up order and health ------------------------------------------------------------------------------------


def test_every_dependency_waits_for_a_condition(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for dependency, rule in service.get("depends_on", {}).items():
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
        port = settings_class(name).model_fields["http_port"].default
        assert services[name]["healthcheck"]["test"] == [
            "CMD", "python", "-m", "services.healthcheck", f"http://127.0.0.1:{port}/health/ready"]
    assert services["migrate"]["command"] == ["sh", "-c", "contacts migrate && contacts topics"]
    assert services["migrate"]["restart"] == "no"


def test_postgres_has_a_readiness_check(compose: dict[str, Any]) -> None:
    postgres = _services(compose)["postgres"]

    assert postgres["image"] == "postgres:16"
    assert _health_command(postgres).startswith("pg_isready ")


# --- Kafka --------------------------------------------------------------------------------------------------------


def test_kafka_runs_in_kraft_mode_with_a_health_check(compose: dict[str, Any]) -> None:
    kafka = _services(compose)["kafka"]
    env = kafka["environment"]

    assert kafka["image"] == "apache/kafka:3.9.1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert str(env["KAFKA_NODE_ID"]) in env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert "kafka-broker-api-versions.sh --bootstrap-server localhost:9092" in _health_command(kafka)


def test_kafka_has_an_internal_listener_for_the_containers_and_an_external_one_for_the_host(
    compose: dict[str, Any],
) -> None:
    env = _services(compose)["kafka"]["environment"]
    listeners = _kafka_listeners(env["KAFKA_LISTENERS"])
    advertised = _kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))

    assert set(listeners) == set(protocols) == {"INTERNAL", "EXTERNAL", "CONTROLLER"}
    assert set(advertised) == {"INTERNAL", "EXTERNAL"}, "the controller listener is never advertised"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert advertised["INTERNAL"] == "kafka:9092" == _services(compose)["ingest"]["environment"][
        "CONTACTS_KAFKA_BOOTSTRAP_SERVERS"]
    assert advertised["EXTERNAL"] == "localhost:9094"
    assert _services(compose)["kafka"]["ports"] == ["127.0.0.1:9094:9094"], "published on loopback only"
    assert listeners["EXTERNAL"] == ":9094" and listeners["INTERNAL"] == ":9092"


def test_the_external_port_can_be_moved_and_stays_advertised_as_published() -> None:
    moved = load({**ENVIRONMENT, "KAFKA_EXTERNAL_PORT": "19094"})
    kafka = _services(moved)["kafka"]

    assert _kafka_listeners(kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"] == "localhost:19094"
    assert kafka["ports"] == ["127.0.0.1:19094:9094"]


def test_the_services_use_idempotent_producers_and_valid_kafka_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*SERVICES, "migrate"):
        env = _services(compose)[name]["environment"]
        assert env["CONTACTS_KAFKA_ENABLE_IDEMPOTENCE"] == "true", name
        assert env["CONTACTS_ENVIRONMENT"] == "production", name
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        kafka = KafkaSecuritySettings()  # every CONTACTS_KAFKA_* given is a known, consistent setting
        assert kafka.enable_idempotence and kafka.acks == "all"
        known = {f"CONTACTS_KAFKA_{field.upper()}" for field in KafkaSecuritySettings.model_fields}
        known |= {f"CONTACTS_{field.upper()}" for field in PlatformSettings.model_fields}
        assert {key for key in env if key.startswith("CONTACTS_KAFKA_")} <= known, name
        assert PlatformSettings().kafka_bootstrap_servers == "kafka:9092"


# --- the image ----------------------------------------------------------------------------------------------------


def test_one_image_built_from_the_deploy_dockerfile(compose: dict[str, Any]) -> None:
    services = _services(compose)
    images = {services[name]["image"] for name in (*SERVICES, "migrate")}

    assert images == {"kagibag-contacts:latest"}
    for name in (*SERVICES, "migrate"):
        assert services[name]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
        assert services[name]["init"] is True
    assert (CHECKOUT / "deploy" / "Dockerfile").is_file()


def test_only_ingest_profiles_kafkas_external_listener_and_the_monitoring_block_are_published(
    compose: dict[str, Any],
) -> None:
    published = {name: service.get("ports", []) for name, service in _services(compose).items()}

    assert published["ingest"] == ["127.0.0.1:8001:8001"]
    assert published["profiles"] == ["127.0.0.1:8002:8002"]
    monitoring = {"monitor": "8005", "prometheus": "9090", "grafana": "3000"}
    for name, port in monitoring.items():
        assert published[name] == [f"127.0.0.1:{port}:{port}"]
    assert not any(ports for name, ports in published.items()
                   if name not in {"ingest", "profiles", "kafka", *monitoring})
    for name in SERVICES:
        assert _services(compose)[name]["environment"][f"CONTACTS_{name.upper()}_HTTP_HOST"] == "0.0.0.0"


def test_interpolation_follows_compose() -> None:
    env = {"SET": "v", "EMPTY": ""}
    cases = {
        "${SET}": "v", "$SET": "v", "$$SET": "$SET", "${UNSET:-d}": "d", "${EMPTY:-d}": "d", "${EMPTY-d}": "",
        "${SET:+r}": "r", "${EMPTY:+r}": "", "${EMPTY+r}": "r", "${UNSET}": "", "a${SET}b": "avb",
    }
    assert {text: interpolate(text, env) for text in cases} == cases
    with pytest.raises(InterpolationError, match="needed"):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?needed}", env) == ""
    assert interpolate(copy.deepcopy({"a": ["${SET}", 1]}), env) == {"a": ["v", 1]}
