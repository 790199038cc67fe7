"""The report: results/<date>.md from the run's report dictionary (results/<date>.json holds it whole)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from benchmarks.common import MONGO_LIST_CONNECTIONS, Report, fmt
from benchmarks.report_overload import overload

Out = Callable[[str], None]

COMPARISONS = (
    ("In-memory store: layers, seed design, grpcio, uvloop, access log", "inmemory"),
    ("Per-RPC overhead at both loads: service vs B0 (in-memory)", "overhead"),
    ("ListTodos scaling (in-memory)", "list"),
    ("MongoDB", "mongo"),
    ("Workers (MongoDB)", "workers"),
    ("grpcio releases: B0 GetTodo only", "grpcio_releases"),
)


def markdown(report: Report) -> str:
    lines: list[str] = []
    out = lines.append
    _header(report, out)
    _targets(report, out)
    for title, key in COMPARISONS:
        if report.get(key):
            _comparison(report, title, key, out)
    if report.get("grpcio"):
        _grpcio(report["grpcio"], out)
    if report.get("explain"):
        _explain(report["explain"], out)
    if report.get("memory"):
        _memory(report["memory"], out)
    if report.get("overload"):
        overload(report["overload"], out)
    for profile_key, profile_title in (
        ("profile", "Profile (py-spy, service with default settings, in-memory store)"),
        ("profile_mongo", "Profile of the MongoDB path (py-spy, FerretDB)"),
    ):
        if report.get(profile_key):
            _profiles(report, profile_key, profile_title, out)
    if report.get("errors"):
        out("## Sections that failed")
        out("")
        for name, error in report["errors"].items():
            out(f"- {name}: `{error.splitlines()[-1] if error else ''}`")
        out("")
    out("Raw figures, every run: the `.json` file next to this one.")
    return "\n".join(lines) + "\n"


def _header(report: Report, out: Out) -> None:
    settings = report["settings"]
    out(f"# Benchmark results {report['date']}")
    out("")
    out(
        f"`make bench` ({report['duration_s'] / 60:.1f} min). Each comparison alternates its sides in one run, "
        f"{settings['rounds']} rounds of {settings['seconds']:g} s per side "
        f"(+{settings['warmup']:g} s warm-up not counted); "
        f"medians and median ratios. Server processes pinned to core {settings['server_cpu']} "
        f"(`taskset`), load generators (h2load for gRPC, wrk for HTTP) to core {settings['load_cpu']}; "
        f"{settings['connections']} connections x {settings['streams']} stream(s) for gRPC, "
        f"{settings['connections']} connections for HTTP. Servers log as configured by default (JSON access "
        "line per RPC on stderr, to a file; uvicorn's own access log for the seed). Server CPU: utime+stime of "
        "the server's processes (/proc) per wall second; foreign / steal: the server core's busy time not used "
        "by the server, and hypervisor steal on it (/proc/stat). Errors: transport failures plus non-OK status "
        "codes from the service's /metrics (CANCELLED at the end of a timed run, the RPCs h2load left in "
        "flight, excluded)."
    )
    out("")
    m = report["machine"]
    out(
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, kernel {m['kernel']}, "
        f"Python {m['python']}, load average at start {' '.join(m['loadavg_at_start'])}."
    )
    out("")
    tools = [v if v.startswith(k) else f"{k} {v}" for k, v in report["tools"].items() if isinstance(v, str)]
    out("Tools: " + ", ".join(tools) + ".")
    if "fastapi_stack" in report["tools"]:
        out(
            "Seed stack (benchmarks/.venv-fastapi): "
            + ", ".join(f"{k} {v}" for k, v in report["tools"]["fastapi_stack"].items())
            + "."
        )
    out("")


def _targets(report: Report, out: Out) -> None:
    out("## Targets")
    out("")
    out("| # | comparison | measured | target | met |")
    out("| --- | --- | --- | --- | --- |")
    for row in report["targets"]:
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        out(f"| {row['item']} | {row['what']} | {fmt(row['value'], 3)} | {row['target']} | {met} |")
    out("")


def _comparison(report: Report, title: str, key: str, out: Out) -> None:
    settings = report["settings"]
    section = report[key]
    out(f"## {title}")
    out("")
    if key == "mongo":
        out(
            f"{report.get('database', 'FerretDB')} on core "
            f"{settings['load_cpu']} with the load generator; the service (or the raw-driver process) on core "
            f"{settings['server_cpu']}; concurrency {section['concurrency']} "
            f"(ListTodos on FerretDB: {MONGO_LIST_CONNECTIONS} connections). "
            "H = 1 / (1/B0 + 1/driver), with B0 from the in-memory section of this run."
        )
        out("")
    if key == "overhead":
        out(
            "GetTodo and CreateTodo at 4 connections x 16 streams and at 64 connections x 1 stream, the sides "
            "alternated per load"
            + (
                "; then B0, B1 and the service at a fixed 1,920 requests per second (`fixed1920`: 64 connections "
                "x 30), where CPU per RPC splits the service's cost into the layers (B1 - B0) and the per-RPC "
                "wrapper (service - B1)"
                if any("fixed" in side for side in section["summary"])
                else ""
            )
            + f". `perf stat -e instructions`: {section['perf']}."
            + "".join(f" `at-{ref}`: the service at {rev}." for ref, rev in section.get("revisions", {}).items())
        )
        out("")
        out("| side | server CPU-us per RPC | instructions per RPC |")
        out("| --- | --- | --- |")
        for side, per in section["per_rpc"].items():
            out(f"| `{side}` | {fmt(per['server_cpu_us_per_rpc'], 1)} | {fmt(per['instructions_per_rpc'])} |")
        out("")
    if key == "workers":
        out(
            f"TODO_WORKERS=1 pinned to core {settings['server_cpu']}; TODO_WORKERS=2 on both cores "
            f"({settings['server_cpu']},{settings['load_cpu']}), sharing core {settings['load_cpu']} with h2load "
            "and FerretDB. Server CPU = utime+stime of the parent and every worker from /proc, per wall second; "
            "metrics on in both (multiprocess mode with 2 workers, as production would run it)."
        )
        out("")
    out(
        "| side | rps (median) | per round | p50 ms | p99 ms | server CPU | rps per server CPU-s "
        "| foreign / steal on server core (max) | errors |"
    )
    out("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for side, s in section["summary"].items():
        label = section["labels"].get(side, side)
        out(
            f"| `{side}` {label} | {fmt(s['rps'])} | {', '.join(fmt(v) for v in s['rps_all'])} | "
            f"{fmt(s['p50_ms'], 2)} | "
            f"{fmt(s['p99_ms'], 2)} | {fmt(s['server_cpu'], 2)} | {fmt(s['rps_per_server_cpu'])} | "
            f"{fmt(s['foreign_on_server_core_max'], 2)} / {fmt(s['steal_max'], 2)} | {s['errors']} |"
        )
    out("")
    out("| ratio | median ratio | per round |")
    out("| --- | --- | --- |")
    for name, value in section["ratios"].items():
        out(f"| {name} | {fmt(value['ratio'], 3)} | {', '.join(str(v) for v in value['per_round'])} |")
    out("")
    if key == "mongo" and section.get("harmonic"):
        out("| operation | B0 rps | raw driver rps | H | service rps | service / H |")
        out("| --- | --- | --- | --- | --- | --- |")
        for name, h in section["harmonic"].items():
            out(
                f"| {name} | {fmt(h['B0'])} | {fmt(h['driver'])} | {fmt(h['H'])} | {fmt(h['service'])} | "
                f"{fmt(h['service/H'], 3)} |"
            )
        out("")


def _grpcio(g: dict[str, Any], out: Out) -> None:
    out("## grpcio releases")
    out("")
    out(
        f"Pinned (uv.lock): {g['pinned']}; latest on PyPI at run time: {g['latest']}. Generated code "
        "(`generated/`, protobuf 6.31 gencode, grpcio >= 1.78.2) in each B0 venv:"
    )
    out("")
    for version, check in g["venvs"].items():
        out(f"- grpcio {version}, protobuf {check['protobuf']}: {check['generated_code']}")
    out("")


def _explain(ex: dict[str, Any], out: Out) -> None:
    out("## MongoDB query plans (explain)")
    out("")
    out(f"Server: {ex['server']}; indexes: {', '.join(ex['indexes'])}.")
    out("")
    out("| query | filter | intended index | plan | pushdown (FerretDB) |")
    out("| --- | --- | --- | --- | --- |")
    for name, plan in ex.items():
        if name in ("server", "indexes"):
            continue
        if "error" in plan:
            out(f"| {name} | | error: {plan['error']} | |")
            continue
        shown = json.dumps(plan["winningPlan"])[:160].replace("|", "/")
        out(
            f"| {name} | `{json.dumps(plan['filter'])[:100]}` | {plan['intended_index']} | {shown} | "
            f"{json.dumps(plan['pushdown'])} |"
        )
    out("")


def _memory(mem: dict[str, Any], out: Out) -> None:
    out("## Memory (in-memory store, 1,000 entries, mixed traffic)")
    out("")
    out(
        "Mix: "
        + ", ".join(f"{int(m['share'] * 100)}% {'/'.join(m['methods'])}" for m in mem["mix"])
        + " (Create with a fixed request_id replays; Create and Delete of one fixed id race, "
        "so the store stays bounded)."
    )
    out("")
    out("| after requests | RSS MiB |")
    out("| --- | --- |")
    for point in mem["points"]:
        out(f"| {point['after_requests']:,} | {point['rss_kib'] / 1024:.1f} |")
    out("")
    out("Status codes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(mem["codes"].items()) if v) + ".")
    out("")


def _profiles(report: Report, profile_key: str, profile_title: str, out: Out) -> None:
    out(f"## {profile_title}")
    out("")
    out(
        "py-spy 0.4.3 `record --nonblocking --rate 250` (the server is not paused, so it keeps its speed) "
        f"for {max(1, int(report['settings']['seconds']))} s under the same h2load load; shares are of the samples "
        "in which a thread of the server was running (idle threads are not sampled), all threads together."
    )
    out("")
    for method, prof in report[profile_key].items():
        if "error" in prof:
            out(f"{method}: profiling failed: {prof['error']}")
            continue
        out(f"### {method} ({prof['samples']} samples, {fmt(prof['rps_while_sampled'])} rps while sampled)")
        out("")
        out("Top frames by self time:")
        out("")
        out("| self % | frame |")
        out("| --- | --- |")
        for row in prof["top_self"]:
            out(f"| {row['share'] * 100:.1f} | `{row['frame']}` |")
        out("")
        out("Self time by component (innermost Python frame; native code counts for its Python caller):")
        out("")
        out("| component | % of samples |")
        out("| --- | --- |")
        for group, share in sorted(prof["components"].items(), key=lambda item: -item[1]):
            out(f"| {group} | {share * 100:.1f} |")
        out("")
