"""The settings of one run (`Options`, from the command line) and what every section shares (`Bench`)."""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.message import Message

from benchmarks.common import BENCH, REPO
from benchmarks.procs import Proc


@dataclass(frozen=True)
class Options:
    """The command line of `python -m benchmarks` (see __main__.py for the help of each)."""

    seconds: float
    warmup: float
    rounds: int
    connections: int
    streams: int
    sections: list[str]
    skip: list[str]
    uv: str
    ferretdb: str
    mongodb_uri: str
    grpcio_latest: str
    grpcio_extra: list[str]
    list_entries: list[int]
    memory_requests: list[int]
    mongo_entries: int
    results: Path
    keep_work: bool
    baseline: str = ""  # a git revision whose service the overhead section also measures
    tag: str = ""  # appended to the results' file names: <date>-<tag>.md


@dataclass
class Database:
    """The MongoDB the mongo and workers sections use: FerretDB started here (`proc`), or one given by URI."""

    proc: Proc | None
    uri: str


def frame(message: Message) -> bytes:
    """A gRPC length-prefixed message (uncompressed), as h2load sends it."""
    body = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


@dataclass
class Bench:
    """Settings of this run, the cores, the work directory and the tools it drives."""

    options: Options
    server_cpu: str
    load_cpu: str
    all_cpus: str
    work: Path
    python: str = str(REPO / ".venv" / "bin" / "python")
    h2load_bin: str = field(default_factory=lambda: shutil.which("h2load") or "h2load")
    wrk_bin: str = field(default_factory=lambda: shutil.which("wrk") or "wrk")
    bodies: dict[str, Path] = field(default_factory=dict)
    database: Database | None = None  # started by the first section that needs it (launch.database)

    @classmethod
    def create(cls, options: Options) -> Bench:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("the benchmark needs 2 cores: one for the server, one for the load generator")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        work = BENCH / "work" / stamp
        (work / "logs").mkdir(parents=True, exist_ok=True)
        return cls(options, str(cpus[0]), str(cpus[1]), ",".join(str(c) for c in cpus[:2]), work)

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def seconds(self) -> float:
        return self.options.seconds

    @property
    def warmup(self) -> float:
        return self.options.warmup

    @property
    def rounds(self) -> int:
        return self.options.rounds

    @property
    def connections(self) -> int:
        return self.options.connections

    @property
    def streams(self) -> int:
        return self.options.streams

    def body(self, name: str, message: Message) -> Path:
        """The request as an h2load data file, written once per name and reused by later sections.

        A name always stands for the same request (a name per distinct message).
        """
        path = self.bodies.get(name)
        if path is None:
            path = self.work / f"{name}.body"
            path.write_bytes(frame(message))
            self.bodies[name] = path
        return path
