"""Constants and small helpers shared by the runner, the sections and the report."""

from __future__ import annotations

import math
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import grpc

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SERVICE = "todo.v1.TodoService"
CONTENT = "Buy milk and bread"
TAGS = ["home", "errands"]
PINNED_GRPCIO: str = grpc.__version__  # .venv holds what uv.lock pins
MONGO_LIST_CONNECTIONS = 4

Report = dict[str, Any]
"""The whole run, written as results/<date>.json; one key per section (see report.py for the layout)."""


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def ms(seconds: float) -> str:
    """A duration as h2load takes it."""
    return f"{round(seconds * 1000)}ms"
