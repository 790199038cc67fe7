"""The overload section of results/<date>.md (issue 19): refusal costs, one busy connection, floods, recovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.common import fmt
from todo_client import DEFAULT_OVERLOAD_POLICY

Out = Callable[[str], None]


def overload(section: dict[str, Any], out: Out) -> None:
    out("## Overload (issue 19)")
    out("")
    flood, victim = section["flood"], section["victim"]
    out(
        f"The service with its default settings (in-memory store, the dedicated health listener as in Kubernetes) "
        f"and B0 (bare grpc.aio, gRPC's defaults). Floods: ghz, {flood['connections']} connections, "
        f"{flood['callers']:,} callers, {flood['deadline_ms']} ms deadlines; the victim: ghz, its own connection, "
        f"{victim['rate']:g} calls/s, {victim['deadline_ms']} ms deadlines; goodput = calls OK within their "
        "deadline per second / capacity. ghz, the victim and the health prober share the load core."
    )
    out("")
    _cost(section, out)
    _busy(section, out)
    _steps(section, out)
    _recovery(section, out)
    _levers(section, out)
    _coop(section, out)


def _cost(section: dict[str, Any], out: Out) -> None:
    cost = section.get("refusal_cost")
    if cost:
        out(
            f"### What a refusal costs (unthrottled, {cost['rate']:,} calls/s offered for {cost['seconds']:g} s; "
            "f = server CPU per refused call / per served call on the same server)"
        )
        out("")
        out("| point | calls | server CPU-us per call | f |")
        out("| --- | --- | --- | --- |")
        for name, point in cost["points"].items():
            out(f"| {name} | {point['calls']:,} | {fmt(point['cpu_us_per_call'], 1)} | {fmt(cost['f'][name], 2)} |")
        out("")


def _busy(section: dict[str, Any], out: Out) -> None:
    busy = section.get("busy_connection")
    if not busy:
        return
    out(
        "### One busy, well-behaved caller with 64 calls at once (unthrottled, GetTodo): defaults / before = "
        f"**{fmt(busy['ratio']['client'], 3)}** for the project's Python client (now "
        f"{DEFAULT_OVERLOAD_POLICY.connections} connections of {DEFAULT_OVERLOAD_POLICY.streams_per_connection} "
        f"streams; before, one connection), **{fmt(busy['ratio']['ghz'], 3)}** for ghz on one connection"
    )
    out("")
    out("| caller | settings | OK/s (median) | per round | outcomes (last round) |")
    out("| --- | --- | --- | --- | --- |")
    for caller, by_side in busy["runs"].items():
        for name, runs in by_side.items():
            last = runs[-1].get("outcomes") or runs[-1].get("codes")
            per_round = ", ".join(fmt(r.get("ok_per_s")) for r in runs)
            out(f"| {caller} | {name} | {fmt(busy['ok_per_s'][caller][name])} | {per_round} | {last} |")
    out("")


def _steps(section: dict[str, Any], out: Out) -> None:
    if section.get("steps"):
        capacities = ", ".join(f"{k} {v:,}/s" for k, v in section["capacity_rps"].items())
        out(
            f"### Floods (the servers' core throttled to {section['quota_percent']:g}% by a CPU quota; "
            f"capacity, ghz 16 connections x 128 callers: {capacities})"
        )
        out("")
        out(
            "| server | offered | ghz reached (x capacity, ghz CPU) | flood goodput | flood p50 / p99 OK ms | "
            "flood codes | handlers finished | victim OK | victim p99 ms | health checks: max ms (not SERVING) |"
        )
        out("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for server, steps in section["steps"].items():
            for step in steps:
                f, v = step["flood"], step["victim"]
                out(
                    f"| {server} | {step['offered']} | {fmt(f['rps'])}/s ({fmt(f.get('offered_multiple'), 2)}x, "
                    f"{fmt(f['ghz_cpu'], 2)}) | **{fmt(f.get('goodput'), 3)}** | {fmt(f['p50_ok_ms'], 1)} / "
                    f"{fmt(f['p99_ok_ms'], 1)} | {_codes(f['codes'])} | {_codes(step.get('server_handled') or {})} | "
                    f"**{fmt(v['ok_fraction'], 3)}** | {fmt(v['p99_ok_ms'], 1)} | {_health(step.get('health'))} |"
                )
        out("")


def _recovery(section: dict[str, Any], out: Out) -> None:
    if section.get("recovery"):
        out(
            f"### Recovery: a steady 0.5x caller (ghz, {_callers(section.get('steady'))}) through a 9 s "
            "flood at ghz's full "
            "rate, and after it (share of its calls OK, by when they were started)"
        )
        out("")
        out("| server | during the flood | per 250 ms after it | seconds until >= 0.95 for good |")
        out("| --- | --- | --- | --- |")
        for server, rec in section["recovery"].items():
            bins = ", ".join(fmt(b, 2) for b in rec["steady_ok_fraction_bins_after"])
            during, seconds = fmt(rec["steady_ok_fraction_during_flood"], 3), fmt(rec["seconds_to_0.95"], 2)
            out(f"| {server} | {during} | {bins} | {seconds} |")
        out("")


def _coop(section: dict[str, Any], out: Out) -> None:
    coop = section.get("cooperating")
    if coop:
        out(
            f"### Cooperating callers: the project's Python client, open loop (core throttled to "
            f"{coop['quota_percent']:g}%, capacity {coop['capacity_rps']:,}/s, client deadline 5 s)"
        )
        out("")
        runs = ", ".join(fmt(value) for value in coop["capacity_closed_runs"])
        reference = ", ".join(f"{name} {fmt(value)}/s" for name, value in coop["reference"].items())
        out(
            f"Capacity: the client in a closed loop at its defaults, 64 callers (median of {runs}/s); for "
            f"reference: {reference}."
        )
        out("")
        out("| offered, client | sent/s | goodput | p50 / p99 OK ms | outcomes | client CPU |")
        out("| --- | --- | --- | --- | --- | --- |")
        for name, run in coop["runs"].items():
            if "error" in run:
                out(f"| {name} | error: {run['error'][-120:]} | | | | |")
                continue
            out(
                f"| {name} | {fmt(run['sent_rps'])} | **{fmt(run['goodput'], 3)}** | {fmt(run['p50_ok_ms'], 1)} / "
                f"{fmt(run['p99_ok_ms'], 1)} | {_codes(run['outcomes'])} | {fmt(run['client_cpu'], 2)} |"
            )
        out("")


def _levers(section: dict[str, Any], out: Out) -> None:
    if not section.get("levers"):
        return
    out("### Each server lever taken away (the service, same quota, flood at 2x and at ghz's full rate)")
    out("")
    out(
        "| settings | capacity | offered | ghz reached | flood goodput | victim OK | victim p99 ms | "
        "health max ms (checks not SERVING) |"
    )
    out("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for lever, result in section["levers"].items():
        for step in result["steps"]:
            f, v = step["flood"], step["victim"]
            out(
                f"| {lever} | {result['capacity_rps']:,} | {step['offered']} | {fmt(f['rps'])}/s "
                f"({fmt(f.get('offered_multiple'), 2)}x) | **{fmt(f.get('goodput'), 3)}** | "
                f"**{fmt(v['ok_fraction'], 3)}** | {fmt(v['p99_ok_ms'], 1)} | {_health(step.get('health'))} |"
            )
    out("")


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{code} {count:,}" for code, count in sorted(codes.items())) or "-"


def _health(health: dict[str, Any] | None) -> str:
    if not health:
        return "-"
    if "error" in health:
        return "prober failed"
    worst = max((probe["max_ms"] or 0) for probe in health.values())
    bad = sum(
        count for probe in health.values() for outcome, count in probe["outcomes"].items() if outcome != "SERVING"
    )
    checks = sum(probe["checks"] for probe in health.values())
    return f"{fmt(worst, 1)} ({bad} of {checks})"


def _callers(shape: dict[str, Any] | None) -> str:
    """A ghz caller shape as recorded in the section (runs before it was recorded: 4 connections)."""
    shape = shape or {"connections": 4, "callers": 100, "deadline_ms": 100}
    return f"{shape['connections']} connections, {shape['callers']} callers, {shape['deadline_ms']} ms deadlines"
