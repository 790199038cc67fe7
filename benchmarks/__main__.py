"""`make bench` (`python -m benchmarks`): the performance comparisons of the todo service, to benchmarks/results/.

Not part of `make check`; no test asserts a duration. Each comparison runs its
sides in the same run, alternating (round-robin, the order rotated every
round), `--rounds` times, and reports medians and ratios. Servers are pinned
to one core (`taskset -c 0`), load generators to the other (`taskset -c 1`):
h2load (Debian nghttp2-client) for gRPC, wrk (Debian) for HTTP. For every run
the CPU time of the server processes (from /proc) and the busy time of each
core (from /proc/stat) are recorded, so a run disturbed by other processes on
the server core shows up in the results as "foreign" CPU.

Sections (all by default, or `--sections a,b`), one module each in benchmarks/sections/:
  inmemory  1 layer overhead (service vs B0), 2 seed design (FastAPI), 3 grpcio
            release (B0 pinned vs latest), 4 uvloop, access-log cost; 9 profile
  overhead  1 at both loads (4 connections x 16 streams, 64 x 1): service vs B0, CPU and
            instructions per RPC (perf stat, where the VM exposes the counters);
            --baseline REF[,REF...] adds the service at git revisions as more sides
  list      6 a 50-entry page at 1,000 vs 100,000 entries (in-memory)
  memory    8 resident memory after 20,000 and 200,000 mixed requests
  mongo     5 MongoDB path (service vs raw driver, Motor vs PyMongo), 6 explain
  workers   7 TODO_WORKERS=2 vs 1 (on MongoDB, as workers need it)
  overload  10 past capacity (issue 19): what each refusal costs (f), one busy connection, floods at
            0.5x-max with a victim and health probes, recovery, the cooperating Python client; the
            servers' core throttled by a cgroup CPU quota so that ghz can offer several times capacity
Optional (`--sections`, not in `make bench`):
  grpcio    3 alone: B0 on the pinned, the newest and BENCH_GRPCIO_EXTRA grpcio releases

`--quick` is a smoke run of the same code (1 round of 1 s, small stores, the
pinned grpcio only, no profile), written to benchmarks/work/quick-results/
unless --results says otherwise: it checks that every section still runs, its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import BENCH, PINNED_GRPCIO, REPO, Report, fmt, log
from benchmarks.context import Bench, Options
from benchmarks.environment import ensure_load_generators, machine_info, tool_info
from benchmarks.procs import stop_all
from benchmarks.report import markdown
from benchmarks.sections import grpcio, inmemory, listing, memory, mongo, overhead, overload, workers
from benchmarks.targets import targets

SECTIONS: dict[str, Callable[[Bench, Report], None]] = {
    "inmemory": inmemory.run,
    "overhead": overhead.run,
    "list": listing.run,
    "memory": memory.run,
    "mongo": mongo.run,
    "workers": workers.run,
    "overload": overload.run,
}
OPTIONAL_SECTIONS: dict[str, Callable[[Bench, Report], None]] = {"grpcio": grpcio.run}  # not run by default
QUICK = {
    "seconds": 1.0, "warmup": 0.2, "rounds": 1, "list_entries": "100,1000", "memory_requests": "500,2000",
    "mongo_entries": 10, "skip": "profile",
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "5")))
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated (alias: --only)")
    parser.add_argument("--only", dest="sections", help=argparse.SUPPRESS)
    parser.add_argument("--skip", default="", help="e.g. profile")
    parser.add_argument("--uv", default=str(REPO / ".tools" / "uv" / "bin" / "uv"))
    parser.add_argument("--ferretdb", default=str(REPO / ".tools" / "bin" / "todo-ferretdb"))
    parser.add_argument(
        "--mongodb-uri",
        default=os.environ.get("BENCH_MONGODB_URI", ""),
        help="a running MongoDB for the mongo and workers sections instead of the FerretDB test server",
    )
    parser.add_argument("--grpcio-latest", default="", help="default: the newest grpcio on PyPI")
    parser.add_argument(
        "--grpcio-extra", default=os.environ.get("BENCH_GRPCIO_EXTRA", ""), help="more grpcio releases for B0"
    )
    parser.add_argument("--list-entries", default="1000,100000")
    parser.add_argument("--memory-requests", default="20000,200000")
    parser.add_argument("--mongo-entries", type=int, default=200)
    parser.add_argument("--results", default="", help="default: benchmarks/results (--quick: benchmarks/work/...)")
    parser.add_argument("--keep-work", action="store_true", help="keep benchmarks/work/<stamp> (logs, profiles)")
    parser.add_argument(
        "--baseline", default="", help="overhead section: also the service at these git revisions (comma-separated)"
    )
    parser.add_argument("--tag", default="", help="results file names <date>-<tag>.md/.json (e.g. a lever's name)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: checks that the sections run")
    if parser.parse_known_args(argv)[0].quick:  # the quick defaults; what the command line says still wins
        parser.set_defaults(**QUICK, grpcio_latest=PINNED_GRPCIO)
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS) - set(OPTIONAL_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {[*SECTIONS, *OPTIONAL_SECTIONS]}")
    default_results = BENCH / "work" / "quick-results" if args.quick else BENCH / "results"
    return Options(
        seconds=args.seconds,
        warmup=args.warmup,
        rounds=args.rounds,
        connections=args.connections,
        streams=args.streams,
        sections=sections,
        skip=[s for s in args.skip.split(",") if s],
        uv=args.uv,
        ferretdb=args.ferretdb,
        mongodb_uri=args.mongodb_uri,
        grpcio_latest=args.grpcio_latest,
        grpcio_extra=[v for v in args.grpcio_extra.replace(",", " ").split() if v],
        list_entries=[int(v) for v in str(args.list_entries).split(",")],
        memory_requests=[int(v) for v in str(args.memory_requests).split(",")],
        mongo_entries=args.mongo_entries,
        results=Path(args.results) if args.results else default_results,
        keep_work=args.keep_work,
        baseline=args.baseline,
        tag=args.tag,
    )


def run_sections(bench: Bench, report: Report) -> None:
    """Each section in turn; one that fails is reported and does not lose the others."""
    for name in bench.options.sections:
        section_began = time.perf_counter()
        try:
            {**SECTIONS, **OPTIONAL_SECTIONS}[name](bench, report)
        except Exception:
            report["errors"][name] = traceback.format_exc()
            log(f"section {name} FAILED:\n{report['errors'][name]}")
        finally:  # a section's servers end with it (the shared database stays for the next)
            stop_all(keep=bench.database.proc if bench.database else None)
        report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - section_began, 1)
        log(f"section {name} done in {time.perf_counter() - section_began:.0f}s")


def write_results(bench: Bench, report: Report) -> Path:
    """results/<date>.json and .md; returns their common stem."""
    results = bench.options.results
    results.mkdir(parents=True, exist_ok=True)
    name = datetime.now(UTC).strftime("%Y-%m-%d")
    stem = results / (f"{name}-{bench.options.tag}" if bench.options.tag else name)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    return stem


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    began = time.perf_counter()
    ensure_load_generators()
    if not Path(options.uv).exists():
        raise SystemExit(f"no uv at {options.uv}: run `make install` first (or pass --uv)")
    bench = Bench.create(options)

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    report: Report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "tools": tool_info(bench),
        "settings": {
            "seconds": bench.seconds, "warmup": bench.warmup, "rounds": bench.rounds,
            "connections": bench.connections, "streams": bench.streams,
            "server_cpu": bench.server_cpu, "load_cpu": bench.load_cpu, "sections": options.sections,
        },
        "errors": {},
    }  # fmt: skip
    log(f"work directory {bench.work.relative_to(REPO)}; sections {', '.join(options.sections)}")
    try:
        run_sections(bench, report)
    finally:
        stop_all()
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    report["duration_s"] = round(time.perf_counter() - began, 1)
    report["targets"] = targets(report)
    stem = write_results(bench, report)
    if not options.keep_work:
        shutil.rmtree(bench.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            bench.work.parent.rmdir()  # benchmarks/work, when nothing else is kept there
    log(f"wrote {stem}.md and .json in {report['duration_s'] / 60:.1f} min")
    for row in report["targets"]:
        met = {True: "met", False: "NOT MET", None: ""}[row["met"]]
        log(f"  [{row['item']}] {row['what']}: {fmt(row['value'], 3)} (target {row['target']}) {met}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
