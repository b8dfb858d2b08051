"""deploy/prometheus and deploy/grafana: Prometheus' own promtool checks the scrape config and rules, runs the
alert rule tests and parses every dashboard query; every metric they name is one the code exports; the compose
block runs the lag monitor, Prometheus and Grafana with these files."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.catalog import PROCESSES, load_settings
from services.monitor.api import LagCollector
from shared.config import PlatformSettings
from shared.metrics import REGISTRY

CHECKOUT = Path(__file__).resolve().parents[2]
PROMETHEUS = CHECKOUT / "deploy" / "prometheus"
GRAFANA = CHECKOUT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "kagibag-contacts.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    """Prometheus' promtool (deploy/prometheus/promtool.sh finds or fetches it)."""
    found = subprocess.run([str(PROMETHEUS / "promtool.sh")], capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, f"no promtool: {found.stderr}"
    return found.stdout.strip()


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_scrape_config_and_its_rules(promtool: str) -> None:
    out = run([promtool, "check", "config", "prometheus.yml"], PROMETHEUS)
    assert "1 rule files found" in out


def test_every_alert_fires_on_its_series_in_promtools_rule_tests(promtool: str) -> None:
    run([promtool, "test", "rules", "alerts.test.yml"], PROMETHEUS)
    alerts = {rule["alert"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
              for rule in group["rules"]}
    tested = {case["alertname"] for test in yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
              for case in test["alert_rule_test"]}
    assert {"ConsumerGroupNotConsuming", "ConsumerLagSecondsHigh", "DeadLettersGrowing",
            "OutboxOldestMessageOld"} <= tested <= alerts


def test_every_dashboard_query_parses(promtool: str, tmp_path: Path) -> None:
    """Each panel query becomes a recording rule (Grafana's variables given values), which promtool parses."""
    substituted = [
        query.replace("$__rate_interval", "5m").replace("$group", ".*") for query in dashboard_queries()
    ]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": query} for index, query in enumerate(substituted)
    ]}]}
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    out = run([promtool, "check", "rules", "dashboard.rules.yml"], tmp_path)
    assert f"{len(substituted)} rules found" in out


def test_promtool_refuses_a_broken_query(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(
        {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (group (kafka_lag)"}]}]}
    ))
    refused = subprocess.run([promtool, "check", "rules", "broken.yml"], capture_output=True, cwd=tmp_path)
    assert refused.returncode != 0


def exported_metric_names() -> set[str]:
    """Every series name the services and the monitor export (counters with _total, histograms' _bucket...)."""
    names = {"up"}
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))

    class Idle:
        class book:  # noqa: N801 - the shape LagCollector reads
            tables: dict[Any, Any] = {}
            last_poll = None

            @staticmethod
            def report(now: float) -> list[Any]:
                return []

        broker_error = None
        polls = 0

    names.update(family.name for family in LagCollector(Idle(), cluster_name="c").collect())  # type: ignore[arg-type]
    return names


def test_the_rules_and_the_dashboard_name_only_metrics_the_code_exports() -> None:
    known = exported_metric_names()
    functions = {"sum", "max", "min", "by", "rate", "increase", "histogram_quantile", "or", "and", "le"}
    for expression in [*alert_expressions(), *dashboard_queries()]:
        without_strings = re.sub(r'"[^"]*"', '""', expression)
        without_labels = re.sub(r"\{[^}]*\}|\([a-z_, ]*\)\s*\(|\[[^\]]*\]", " ", without_strings)
        for name in re.findall(r"\b(kafka_[a-z_]+|contacts_[a-z_]+|up)\b", without_labels):
            assert name in known or name in functions, f"{name!r} in {expression!r} is not exported"


def test_the_dashboard_is_well_formed_for_grafana() -> None:
    document = dashboard()
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    assert document["uid"] and document["title"] and isinstance(document["schemaVersion"], int)
    for panel in document["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys() and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid
        assert panel["targets"] and all(target["expr"] and target["refId"] for target in panel["targets"])
    titles = " ".join(panel["title"].lower() for panel in document["panels"])
    for subject in ("lag per group", "per second", "import duration", "failed batches", "dead letters"):
        assert subject in titles
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "contacts.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_every_process_on_its_configured_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {target for job in config["scrape_configs"] for entry in job["static_configs"]
               for target in entry["targets"]}
    platform = PlatformSettings()
    expected = {f"{name}:{load_settings(name, platform=platform).http_port}" for name in PROCESSES}
    assert targets == expected


def test_compose_runs_the_monitor_prometheus_and_grafana_with_these_files() -> None:
    services = yaml.safe_load((CHECKOUT / "docker-compose.yml").read_text())["services"]
    monitor, prometheus, grafana = services["monitor"], services["prometheus"], services["grafana"]
    assert monitor["command"] == ["python", "-m", "services.monitor"]
    assert monitor["environment"]["CONTACTS_MONITOR_HTTP_HOST"] == "0.0.0.0"
    assert monitor["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "/health/ready" in " ".join(monitor["healthcheck"]["test"])
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert prometheus["depends_on"]["monitor"]["condition"] == "service_healthy"
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    for service in (monitor, prometheus, grafana):
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
