"""The Helm charts render and validate: `helm lint --strict`, `helm template` under several value
sets, every object against the Kubernetes schemas (strict), the alert rules through promtool, and
every metric the rules and the dashboard query is one the services actually export.

Tools come from `deploy/helm/tools.sh`, which `make test` runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from choreograph.observability.metrics import ServiceMetrics
from saga_tracker.flow import QueuedCommands
from saga_tracker.metrics import OpenInstances, TrackerMetrics

REPO = Path(__file__).resolve().parents[3]
CHARTS = REPO / "deploy/helm"
K8S = "1.33.0"
CRDS = {"PrometheusRule", "ServiceMonitor", "KafkaUser"}
PROCESSES = [
    "--set-file",
    f"processes.order-fulfilment\\.v1\\.yaml={REPO}/processes/order-fulfilment.v1.yaml",
]


def tool(name: str) -> str:
    cache = Path(os.environ.get("CHOREOGRAPH_CACHE", Path.home() / ".cache/choreograph"))
    found = cache / "bin" / name if (cache / "bin" / name).exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: run `bash deploy/helm/tools.sh` (make test does)")
    return str(found)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, cwd=CHARTS)


def render(chart: str, *values: str) -> list[dict[str, Any]]:
    result = helm("template", "demo", chart, *values)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] in CRDS:
            continue  # checked on their own below
        kubernetes_validate.validate(doc, K8S, strict=True)


def exported_metrics() -> set[str]:
    """Every sample name the runtime and the tracker can export."""
    registry = CollectorRegistry()
    runtime = ServiceMetrics("saga-tracker")
    for family in runtime.registry.collect():
        registry.register(_Fixed(family))
    TrackerMetrics().register(registry)
    registry.register(OpenInstances(lambda: []))
    registry.register(QueuedCommands(lambda: []))
    names: set[str] = set()
    for line in generate_latest(registry).decode().splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            name, kind = match.groups()
            names |= {
                "counter": {name if name.endswith("_total") else f"{name}_total"},
                "histogram": {f"{name}_bucket", f"{name}_count", f"{name}_sum"},
            }.get(kind, {name})
    return names


class _Fixed:
    def __init__(self, family: Any) -> None:
        self.family = family

    def collect(self) -> list[Any]:
        return [self.family]


def queried_metrics(text: str) -> set[str]:
    return set(re.findall(r"\bchoreograph_[a-z_]+", text))


@pytest.mark.parametrize("chart", ["team-processor", "saga-tracker"])
def test_lint_strict(chart: str) -> None:
    result = helm("lint", chart, "--strict", *PROCESSES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_team_processor_defaults_and_secured_cluster() -> None:
    plain = render("team-processor")
    validate(plain)
    kinds = sorted(d["kind"] for d in plain)
    assert kinds == ["ConfigMap", "PodDisruptionBudget", "PrometheusRule", "Service", "StatefulSet"]
    [sts] = [d for d in plain if d["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["CHOREOGRAPH_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["CHOREOGRAPH_METRICS_HOST"]["value"] == "0.0.0.0"  # probes come from the kubelet
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    [service] = [d for d in plain if d["kind"] == "Service"]
    assert service["spec"]["publishNotReadyAddresses"] is True  # scraped while restoring

    secured = render(
        "team-processor",
        "--set", "kafka.securityProtocol=SASL_SSL",
        "--set", "kafka.sasl.existingSecret=kafka-payments",
        "--set", "kafka.tls.existingSecret=kafka-ca",
        "--set", "kafka.registryAuth.existingSecret=registry-payments",
        "--set", "metrics.serviceMonitor.enabled=true",
    )  # fmt: skip
    validate(secured)
    [sts] = [d for d in secured if d["kind"] == "StatefulSet"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["CHOREOGRAPH_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "kafka-payments",
        "key": "password",
    }
    assert env["CHOREOGRAPH_SSL_CA_LOCATION"]["value"] == "/etc/choreograph/tls/ca.crt"
    assert {"name": "kafka-tls", "mountPath": "/etc/choreograph/tls", "readOnly": True} in (
        container["volumeMounts"]
    )
    assert "ServiceMonitor" in {d["kind"] for d in secured}
    assert not any("password" in json.dumps(d).lower() and "secretKeyRef" not in json.dumps(d)
                   for d in secured if d["kind"] == "Secret")  # fmt: skip


def test_missing_settings_are_refused_with_a_reason() -> None:
    sasl = helm("template", "demo", "team-processor", "--set", "kafka.securityProtocol=SASL_SSL")
    assert sasl.returncode != 0 and "kafka.sasl.existingSecret is required" in sasl.stderr
    empty = helm("template", "demo", "saga-tracker")
    assert empty.returncode != 0 and "processes is empty" in empty.stderr


def test_saga_tracker_renders_with_alerts_and_dashboard(tmp_path: Path) -> None:
    docs = render(
        "saga-tracker", *PROCESSES,
        "--set", "http.tokens.existingSecret=tracker-tokens",
        "--set", "http.ingress.enabled=true",
        "--set", "http.publicUrl=https://tracker.example.com",
    )  # fmt: skip
    validate(docs)
    kinds = {d["kind"] for d in docs}
    assert kinds >= {"StatefulSet", "ConfigMap", "Service", "Ingress", "PrometheusRule"}
    [config] = [
        d for d in docs if d["kind"] == "ConfigMap" and "processes" in d["metadata"]["name"]
    ]
    definition = yaml.safe_load(config["data"]["order-fulfilment.v1.yaml"])
    assert definition["name"] == "order-fulfilment"
    [sts] = [d for d in docs if d["kind"] == "StatefulSet" and "ui" not in d["metadata"]["name"]]
    tracker = sts["spec"]["template"]["spec"]["containers"][0]
    assert tracker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert tracker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}

    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {"SagaCompensationFailed", "SagaDeadlinesLate", "SagaValueAtRiskHigh"} <= set(alerts)
    assert all(r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"])

    [board] = [d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(board["data"]["saga-tracker.json"])
    check_dashboard(tmp_path, board["data"]["saga-tracker.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    known = exported_metrics()
    used = queried_metrics(" ".join(exprs)) | queried_metrics(yaml.safe_dump(rule["spec"]))
    assert used and used <= known, f"not exported: {sorted(used - known)}"


def check_dashboard(tmp_path: Path, text: str) -> None:
    """Against Grafana's dashboard schema (strict: nothing missing, mistyped or unknown)."""
    board = tmp_path / "dashboard.json"
    board.write_text(text)
    checked = subprocess.run([tool("dashboard-check"), str(board)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_check_refuses_what_grafanas_schema_refuses(tmp_path: Path) -> None:
    wrong = {"title": 3, "panels": [], "annotations": {"list": []}, "templating": {"list": []},
             "schemaVersion": 39, "colour": "blue"}  # fmt: skip
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    checked = subprocess.run([tool("dashboard-check"), str(tmp_path / "wrong.json")],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 1
    assert "title: json: cannot unmarshal number" in checked.stderr
    assert "unexpected field 'colour'" in checked.stderr


def test_team_processor_alerts_fire_on_the_symptoms_and_stay_quiet_otherwise(
    tmp_path: Path,
) -> None:
    """The rules for serviceName payments, through promtool's unit tests on synthetic series
    (team_processor_alerts.yaml), and the dashboard against Grafana's schema."""
    docs = render("team-processor", "--set", "alerts.labels.release=kube-prometheus-stack")
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    full = tmp_path / "full.yaml"
    full.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run([tool("promtool"), "check", "rules", str(full)],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == {
        "ChoreographServiceDown", "ChoreographLagGrowing", "ChoreographDeadLetters",
        "ChoreographCrashedOnRecord", "ChoreographDependencyDown", "ChoreographRestoreSlow",
        "ChoreographCommitsFailing",
    }  # fmt: skip
    assert all(r["annotations"]["runbook_url"].endswith(f"#{r['alert'].lower()}") for r in rules)
    for r in rules:  # what the unit tests compare is the logic: labels and when
        r.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(Path(__file__).with_name("team_processor_alerts.yaml"), tmp_path)
    unit = subprocess.run([tool("promtool"), "test", "rules", "team_processor_alerts.yaml"],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert unit.returncode == 0, unit.stdout + unit.stderr

    [board] = [d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    check_dashboard(tmp_path, board["data"]["team-service.json"])
    dashboard = json.loads(board["data"]["team-service.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = queried_metrics(exprs) | queried_metrics(full.read_text())
    known = exported_metrics()
    assert used and used <= known, f"not exported: {sorted(used - known)}"
    documented = Path(REPO / "docs/on-call.md").read_text()
    missing = [r for r in {r["alert"] for r in rules} if f"### {r}" not in documented]
    assert not missing, f"docs/on-call.md has no section for {missing}"


def test_team_processor_takes_the_derived_acls_as_a_strimzi_user(tmp_path: Path) -> None:
    from choreograph.governance.acls import derive, helm_values
    from choreograph_examples.payments.service import build

    values = tmp_path / "acls.yaml"
    values.write_text(helm_values(derive(build()), "payments", "prod"))
    docs = render("team-processor", "-f", str(values))
    validate(docs)
    [user] = [d for d in docs if d["kind"] == "KafkaUser"]
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == "prod"
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    acls = {(a["resource"]["type"], a["resource"]["name"]): a["operations"]
            for a in user["spec"]["authorization"]["acls"]}  # fmt: skip
    assert acls[("topic", "orders.events")] == ["Describe", "Read"]
    assert "Write" in acls[("topic", "payments.events")]
    assert acls[("transactionalId", "payments-")] == ["Describe", "Write"]
    assert not any(name.startswith("inventory") for _, name in acls)
    unset = helm("template", "demo", "team-processor", "--set", "kafkaUser.enabled=true",
                 "--set", "kafkaUser.cluster=prod")  # fmt: skip
    assert unset.returncode != 0 and "kafkaUser.acls is empty" in unset.stderr


def test_saga_tracker_replicas_share_a_postgres_and_the_ui_runs_on_its_own() -> None:
    docs = render(
        "saga-tracker", *PROCESSES,
        "--set", "replicas=3",
        "--set", "visibility.postgres.host=postgres.tracking.svc",
        "--set", "visibility.postgres.existingSecret=tracker-postgres",
        "--set", "otlp.endpoint=http://otel-collector:4318",
    )  # fmt: skip
    validate(docs)
    [sts] = [d for d in docs if d["kind"] == "StatefulSet"]
    [ui] = [d for d in docs if d["kind"] == "Deployment"]
    assert sts["spec"]["replicas"] == 3
    for workload in (sts, ui):
        container = workload["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        url = env["SAGA_TRACKER_VISIBILITY_URL"]["value"]
        assert url == "postgresql://choreograph@postgres.tracking.svc:5432/choreograph"
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "tracker-postgres",
            "key": "password",
        }
    ui_container = ui["spec"]["template"]["spec"]["containers"][0]
    assert ui_container["command"] == ["saga-tracker", "ui", "--no-index"]
    tracker_env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert tracker_env["SAGA_TRACKER_OTLP_ENDPOINT"]["value"] == "http://otel-collector:4318"
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert "saga-tracker-ui" in services
    # The UI's pods are not the tracker's: its Service does not send traffic to the replicas.
    ui_labels = ui["spec"]["template"]["metadata"]["labels"]
    assert ui_labels != sts["spec"]["template"]["metadata"]["labels"]

    alone = render("saga-tracker", *PROCESSES)  # no PostgreSQL: the UI indexes for itself
    validate(alone)
    [ui] = [d for d in alone if d["kind"] == "Deployment"]
    assert ui["spec"]["template"]["spec"]["containers"][0]["command"] == ["saga-tracker", "ui"]
    no_secret = helm("template", "demo", "saga-tracker", *PROCESSES,
                     "--set", "visibility.postgres.host=pg")  # fmt: skip
    assert no_secret.returncode != 0 and "existingSecret is required" in no_secret.stderr


def test_saga_tracker_signs_people_in_through_the_configured_provider() -> None:
    docs = render(
        "saga-tracker", *PROCESSES,
        "--set", "oidc.issuer=https://idp.example.com/realms/acme",
        "--set", "oidc.existingSecret=tracker-oidc",
        "--set", "http.publicUrl=https://tracker.example.com",
    )  # fmt: skip
    validate(docs)
    [tracker] = [d for d in docs if d["kind"] == "StatefulSet"]
    env = {e["name"]: e for e in tracker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SAGA_TRACKER_OIDC_ISSUER"]["value"] == "https://idp.example.com/realms/acme"
    assert env["SAGA_TRACKER_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "tracker-oidc", "key": "client-secret"}  # fmt: skip
    assert (
        env["SAGA_TRACKER_SESSION_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "session-secret"
    )
    unsecret = helm("template", "demo", "saga-tracker", *PROCESSES,
                    "--set", "oidc.issuer=https://idp.example.com/realms/acme")  # fmt: skip
    assert unsecret.returncode != 0 and "oidc.existingSecret is required" in unsecret.stderr


def test_saga_tracker_scopes_reads_and_keeps_ended_instances_as_long_as_set() -> None:
    docs = render(
        "saga-tracker", *PROCESSES, "--set", "http.scopedReads=true", "--set", "retention=30d"
    )
    validate(docs)
    [tracker] = [d for d in docs if d["kind"] == "StatefulSet"]
    [ui] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e for e in tracker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SAGA_TRACKER_SCOPED_READS"]["value"] == "true"
    assert env["SAGA_TRACKER_RETENTION"]["value"] == "30d"
    ui_container = ui["spec"]["template"]["spec"]["containers"][0]
    ui_env = {e["name"]: e for e in ui_container["env"]}
    # The UI knows who owns each process from the definitions, mounted as the tracker's are.
    assert ui_env["SAGA_TRACKER_SCOPED_READS"]["value"] == "true"
    assert ui_env["SAGA_TRACKER_DEFINITIONS"]["value"] == "/etc/choreograph/processes"
    mounts = {m["name"]: m["mountPath"] for m in ui_container["volumeMounts"]}
    assert mounts["processes"] == "/etc/choreograph/processes"
    defaults = render("saga-tracker", *PROCESSES)
    [tracker] = [d for d in defaults if d["kind"] == "StatefulSet"]
    names = {e["name"] for e in tracker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SAGA_TRACKER_SCOPED_READS" not in names and "SAGA_TRACKER_RETENTION" not in names
