"""The targets of the performance issue: for each, the measured value, the target, and whether it is met."""

from __future__ import annotations

from typing import Any

from benchmarks.common import Report

# Issue 13's goals: the service / bare grpc.aio B0 per method, and the service / H on MongoDB.
GOALS = {"get": 0.90, "create": 0.85}
MONGO_GOAL = 0.85


def targets(report: Report) -> list[dict[str, Any]]:
    """Each target of the issue: measured value, target, met or not."""
    rows: list[dict[str, Any]] = []

    def add(item: str, what: str, value: float | None, target: str, met: bool | None) -> None:
        rows.append(_row(item, what, value, target, met))

    inm = report.get("inmemory", {}).get("ratios", {})
    if inm:
        r = inm["get service/B0"]["ratio"]
        add("1", "GetTodo: service / B0 (rps, issue 13)", r, ">= 0.9", r is not None and r >= GOALS["get"])
        r = inm["create service/B0"]["ratio"]
        add("1", "CreateTodo: service / B0 (rps, issue 13)", r, ">= 0.85", r is not None and r >= GOALS["create"])
        r = inm["get service/seed"]["ratio"]
        add("2", "GetTodo service / seed FastAPI GET (rps, one core each)", r, ">= 1.0", r is not None and r >= 1.0)
        r = inm["get service/seed per server CPU-s"]["ratio"]
        add("2", "... per server CPU-second", r, ">= 1.0", r is not None and r >= 1.0)
        for key, value in inm.items():
            if key.startswith("get B0 grpcio"):
                add("3", f"B0 {key[len('get B0 grpcio ') :]} (rps)", value["ratio"], "report; pin the fastest", None)
        r = inm["get service uvloop/asyncio"]["ratio"]
        add("4", "GetTodo uvloop / asyncio (rps)", r, ">= 1.05 to adopt", r is not None and r >= 1.05)
        r = inm["create service uvloop/asyncio"]["ratio"]
        add("4", "CreateTodo uvloop / asyncio (rps)", r, ">= 1.05 to adopt", r is not None and r >= 1.05)
        r = inm["get service log WARNING/INFO (access log cost)"]["ratio"]
        add("-", "access log cost: GetTodo LOG_LEVEL=WARNING / INFO (rps)", r, "report", None)
    rows += _overhead(report)
    mongo = report.get("mongo", {})
    for key, value in mongo.get("harmonic", {}).items():
        ratio = value["service/H"]
        add("5", f"MongoDB {key}: service / H (issue 13)", ratio, f">= {MONGO_GOAL}", ratio >= MONGO_GOAL)
    for key, value in mongo.get("ratios", {}).items():
        if not key.startswith(("get raw", "create raw")):
            add("5", f"{key} (service rps)", value["ratio"], "report (Motor stays default)", None)
    lst = report.get("list", {}).get("ratios", {})
    for key, value in lst.items():
        if "latency" in key:
            r = value["ratio"]
            add("6", f"ListTodos {key}", r, "<= 1.5", r is not None and r <= 1.5)
    workers = report.get("workers", {}).get("ratios", {})
    if workers:
        r = workers["rps per server CPU-s 2/1"]["ratio"]
        add("7", "workers 2/1: rps per server CPU-second", r, ">= 0.85", r is not None and r >= 0.85)
        r = workers["rps 2/1"]["ratio"]
        add("7", "workers 2/1: total rps", r, "> 1.0", r is not None and r > 1.0)
    rows += _overload(report)
    memory = report.get("memory")
    if memory:
        r = memory["ratio"]
        add("8", "RSS after 200,000 / after 20,000 mixed requests", r, "<= 1.1", r <= 1.1)
    if report.get("profile"):
        add("9", "profile of Get and Create (top frames below)", None, "listed", True)
    return rows


def _row(item: str, what: str, value: float | None, target: str, met: bool | None) -> dict[str, Any]:
    """A target as the report stores it (`note`: kept empty in the JSON's shape)."""
    return {"item": item, "what": what, "value": value, "target": target, "met": met, "note": ""}


def _overhead(report: Report) -> list[dict[str, Any]]:
    """Issue 13's goals: service / B0 at both loads, GetTodo >= 0.90, CreateTodo >= 0.85."""
    over = report.get("overhead", {}).get("ratios", {})
    rows = []
    for method, goal in GOALS.items():
        for load in ("4x16", "64x1"):
            r = over.get(f"{method} {load} service/B0", {}).get("ratio")
            if r is not None:
                what, target = f"{method} {load}: service / B0 (rps, issue 13)", f">= {goal}"
                rows.append(_row("1", what, r, target, r >= goal))
    return rows


def _overload(report: Report) -> list[dict[str, Any]]:
    """Issue 19's goals 2 and 3, from the overload section."""
    section = report.get("overload", {})
    rows = []
    steps = section.get("steps", {}).get("service", [])
    top = next((step for step in steps if step["offered"] == "max"), None)
    if top is not None:
        victim = top["victim"]["ok_fraction"]
        rows.append(
            _row("19.2", "flood at ghz's full rate: victim's calls OK in 100 ms", victim, ">= 0.9", victim >= 0.9)
        )
        goodput = top["flood"].get("goodput")
        rows.append(
            _row("19.2", "flood at ghz's full rate: the flood's goodput", goodput, ">= 0.1", (goodput or 0) >= 0.1)
        )
        worst = _worst_health(steps, "health")
        what = "health checks on the dedicated health listener (what the kubelet probes), every flood step: max ms"
        rows.append(_row("19.2", what, worst, "< 100", worst is not None and worst < 100))
        worst_main = _worst_health(steps, "main")
        rows.append(_row("19.2", "... on the main gRPC port: max ms", worst_main, "report", None))
        bad = sum(
            count
            for step in steps
            for probe in (step.get("health") or {}).values()
            for outcome, count in probe.get("outcomes", {}).items()
            if outcome != "SERVING"
        )
        rows.append(_row("19.2", "health checks not SERVING during the floods", bad, "0", bad == 0))
    recovery = section.get("recovery", {}).get("service")
    if recovery:
        seconds = recovery["seconds_to_0.95"]
        rows.append(
            _row(
                "19.2",
                "after the flood: seconds until 0.5x goodput >= 0.95",
                seconds,
                "<= 1",
                seconds is not None and seconds <= 1,
            )
        )
    busy = section.get("busy_connection", {}).get("ratio", {})
    if busy.get("client") is not None:
        what = "the project's client, 64 calls at once: defaults / before (OK/s)"
        rows.append(_row("19.2", what, busy["client"], ">= 0.9", busy["client"] >= 0.9))
    if busy.get("ghz") is not None:
        rows.append(
            _row("19.2", "ghz, 64 calls at once on one connection: defaults / before", busy["ghz"], "report", None)
        )
    for name, run in section.get("cooperating", {}).get("runs", {}).items():
        if name.endswith(" defaults") and "goodput" in run:
            rows.append(
                _row(
                    "19.3",
                    f"cooperating Python client {name}: goodput",
                    run["goodput"],
                    ">= 0.9",
                    run["goodput"] >= 0.9,
                )
            )
    return rows


def _worst_health(steps: list[dict[str, Any]], port: str) -> float | None:
    """The slowest health check on `port` over the steps; None when nothing was probed there (not a pass)."""
    return max(
        (
            probe.get("max_ms") or 0.0
            for step in steps
            for key, probe in (step.get("health") or {}).items()
            if key.startswith(port)
        ),
        default=None,
    )
