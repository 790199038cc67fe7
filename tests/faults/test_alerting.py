"""Operators' side: every alert has a runbook section and a unit test, the inhibition works in a real
Alertmanager, a real Prometheus sees a database black hole fire its alert and clear, and the dashboard
asks only for series that exist.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import subprocess
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from tests.support.faults import FIGURES, FaultService, service_env, timed
from tests.support.metrics import scrape
from tests.support.mongo_server import MongoServer
from tests.support.monitoring import (
    DEPLOY,
    RULES,
    Server,
    alert_state,
    alertmanager,
    alerts,
    binary,
    blackbox_exporter,
    eventually,
    get_json,
    prometheus,
    query,
    recorded_names,
    rules,
    series_names,
)
from tests.support.toxiproxy import Proxy
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.process  # the service, the database and the fault proxy run as processes

REPO = DEPLOY.parent
DASHBOARD = DEPLOY / "grafana" / "todo-service.json"
DATABASE_ALERT = "TodoServiceDatabaseUnavailable"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    found = set()
    for heading in re.findall(r"^#+\s+(.+)$", markdown, flags=re.MULTILINE):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


def test_every_alert_has_a_runbook_section_severity_and_a_unit_test_that_fires_it() -> None:
    unit_tests = [yaml.safe_load(path.read_text()) for path in (DEPLOY / "prometheus" / "tests").glob("*.yaml")]
    fired = {
        case["alertname"]
        for document in unit_tests
        for test in document["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = [alert["alert"] for alert in alerts()]
    assert len(names) == len(set(names)) >= 9
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert anchor in anchors((REPO / path).read_text(encoding="utf-8")), f"{alert['alert']}: {url} is no section"
        assert alert["labels"]["severity"] in {"page", "ticket"}
        assert alert["alert"] in fired, f"no promtool unit test fires {alert['alert']}"


def test_alertmanager_silences_the_slo_alerts_a_database_outage_causes() -> None:
    def post(server: Server, *alerts: dict[str, str]) -> None:
        now = datetime.now(UTC).isoformat()
        body = [{"labels": labels, "annotations": {}, "startsAt": now} for labels in alerts]
        get_json(f"{server.url}/api/v2/alerts", json.dumps(body).encode())

    def states(server: Server) -> dict[tuple[str, str], str] | None:
        answer = get_json(f"{server.url}/api/v2/alerts")
        found = {(a["labels"]["alertname"], a["labels"]["job"]): a["status"]["state"] for a in answer}
        return found if len(found) == 4 else None

    with tempfile.TemporaryDirectory(prefix="todo-alertmanager-") as directory:
        server = alertmanager(Path(directory))
        try:
            post(
                server,
                {"alertname": DATABASE_ALERT, "job": "todo", "instance": "pod-a", "severity": "page"},
                {"alertname": "TodoServiceAvailabilityBurnRateCritical", "job": "todo", "severity": "page"},
                {"alertname": "TodoServiceLatencyBurnRateWarning", "job": "todo", "severity": "ticket"},
                {"alertname": "TodoServiceAvailabilityBurnRateCritical", "job": "other", "severity": "page"},
            )
            found, _ = eventually(lambda: states(server), 10, "Alertmanager did not list the alerts")
        finally:
            server.close()
    assert found == {
        (DATABASE_ALERT, "todo"): "active",
        ("TodoServiceAvailabilityBurnRateCritical", "todo"): "suppressed",
        ("TodoServiceLatencyBurnRateWarning", "todo"): "suppressed",
        ("TodoServiceAvailabilityBurnRateCritical", "other"): "active",  # another job's outage is its own
    }


def test_the_fast_rules_differ_from_the_deployed_ones_only_in_the_database_alerts_for() -> None:
    """The deploy rules with the database alert's `for` shortened (the only change the e2e test makes)."""
    shortened = fast_rules()
    database = next(
        rule for group in shortened["groups"] for rule in group["rules"] if rule.get("alert") == DATABASE_ALERT
    )
    assert database["for"] == "2s"
    assert [rule.get("expr") for group in shortened["groups"] for rule in group["rules"]] == [
        rule.get("expr") for group in rules()["groups"] for rule in group["rules"]
    ]


def fast_rules() -> dict[str, Any]:
    shortened = copy.deepcopy(rules())
    for group in shortened["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == DATABASE_ALERT:
                rule["for"] = "2s"
    return shortened


def prometheus_config(metrics: str, probed: str, prober: Server) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yaml with loopback targets and 0.5 s intervals."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yaml").read_text())
    config["global"] = {"scrape_interval": "500ms", "evaluation_interval": "500ms"}
    config.pop("alerting")
    for job in config["scrape_configs"]:
        if job["job_name"] == "todo-service":
            job["static_configs"] = [{"targets": [metrics]}]
        else:
            job["static_configs"] = [{"targets": [probed]}]
            job["relabel_configs"][-1]["replacement"] = f"127.0.0.1:{prober.port}"
    return config


async def test_a_real_prometheus_fires_the_database_alert_on_a_black_hole_and_clears_it(
    db_proxy: Proxy, mongo_server: MongoServer
) -> None:
    env = service_env(db_proxy.uri, "pymongo", mongo_server.database_name("alerting"))
    with FaultService(env) as service, tempfile.TemporaryDirectory(prefix="todo-prometheus-") as directory:
        service.ready()
        metrics = service.metrics_url.removeprefix("http://").removesuffix("/metrics")
        prober = blackbox_exporter()
        server = prometheus(Path(directory), prometheus_config(metrics, service.address, prober), fast_rules())
        try:
            async with grpc.aio.insecure_channel(service.address) as channel:
                stub = pb_grpc.TodoServiceStub(channel)
                created = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="watched")))).todo
                await stub.GetTodo(pb.GetTodoRequest(id=created.id))
                eventually(lambda: query(server, 'probe_success{job="todo-service-probe"} == 1') or None, 30, "probe")
                assert alert_state(server, DATABASE_ALERT) == "inactive"

                db_proxy.black_hole()
                _, firing = await asyncio.to_thread(
                    eventually, lambda: alert_state(server, DATABASE_ALERT) == "firing" or None, 30, "firing"
                )
                probe_failed = query(server, 'probe_success{job="todo-service-probe"} == 0')
                db_proxy.clear()
                _, cleared = await asyncio.to_thread(
                    eventually, lambda: alert_state(server, DATABASE_ALERT) == "inactive" or None, 30, "inactive"
                )

                # An overload burns the availability SLO: a slower database, more callers than
                # TODO_MAX_CONCURRENT_RPCS, UNAVAILABLE (CONCURRENCY_LIMIT_REACHED) for the rest.
                with db_proxy.toxic("latency", "downstream", latency=300):
                    # 10 connections of 16 streams (a subchannel pool each, or they would share one): 160 at once.
                    options = [("grpc.use_local_subchannel_pool", 1)]
                    channels = [grpc.aio.insecure_channel(service.address, options=options) for _ in range(10)]
                    endings = await asyncio.gather(
                        *(
                            timed(pb_grpc.TodoServiceStub(channels[n % 10]).GetTodo(pb.GetTodoRequest(id=created.id)))
                            for n in range(600)
                        )
                    )
                    for extra in channels:
                        await extra.close(None)
                burn, _ = await asyncio.to_thread(
                    eventually,
                    lambda: query(server, "todo:slo_availability_errors:ratio_rate5m > 0") or None,
                    30,
                    "burn",
                )
                exported = set(scrape(service.metrics_url)) | set(
                    scrape(f"{prober.url}/probe?module=todo_readiness&target={service.address}")
                )
        finally:
            server.close()
            prober.close()
        assert service.terminate() == 0, service.output
    assert probe_failed, "the prober did not see the outage"
    FIGURES.record(
        "real Prometheus, database black hole",
        alert_firing_after_s=firing,
        alert_inactive_after_s=cleared,
        overload_calls=Counter(code for code, _ in endings),
        availability_error_ratio_5m=round(float(burn[0]["value"][1]), 3),
    )
    check_dashboard({name for name, _labels in exported})


def check_dashboard(exported: set[str]) -> None:
    """Every panel query parses (promtool) and names only exported or recorded series."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    titles = {panel["title"] for panel in dashboard["panels"]}
    for needed in ("Traffic", "Errors", "Latency", "Shedding", "Readiness", "Database latency"):
        assert any(title.startswith(needed) or needed in title for title in titles), needed
    known = exported | recorded_names()
    for expr in exprs:
        unknown = series_names(expr) - known
        assert not unknown, f"{expr}: {unknown} are not exported by the service or the prober, nor recorded"
    rule_file = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query:{n}", "expr": expr.replace("$__rate_interval", "1m")}
                    for n, expr in enumerate(exprs)
                ],
            }
        ]
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(rule_file, file)
        file.flush()
        result = subprocess.run(
            [str(binary("TODO_PROMTOOL", "promtool")), "check", "rules", file.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout
    for name in recorded_names():
        assert name in RULES.read_text()


def test_series_names_reads_metric_names_only() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, operation) (rate(todo_x_bucket{a="b{c}"}[$__rate_interval])))'
        " / on(job) up"
    )
    assert series_names(expr) == {"todo_x_bucket", "up"}
    assert series_names("todo:slo:ratio_rate5m > (14.4 * 0.001) and ignoring(x) y_total offset 5m") == {
        "todo:slo:ratio_rate5m",
        "y_total",
    }
