"""The parent of TODO_WORKERS > 1 worker processes.

It forks the workers before any gRPC object exists (nothing imported so far
loads gRPC); they share the port through SO_REUSEPORT, each with its own
database client. Each worker writes its metrics to files in a directory the
supervisor makes and hands over in the settings
(`metrics_multiprocess_dir`); the supervisor serves their sum. It forwards
SIGTERM/SIGINT to the workers and exits 0 when every worker did; a worker
that fails stops the rest, so the orchestrator restarts the whole pod.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable

from service.infrastructure.config import Settings
from service.infrastructure.startup import StartupError
from service.lifecycle import MakeApp, run

_log = logging.getLogger("service")


class Supervisor:
    """Forks the workers, forwards signals, collects their exit codes."""

    def __init__(self, settings: Settings, make_app: MakeApp | None) -> None:
        self.settings = settings
        self.make_app = make_app
        self.children: dict[int, int] = {}
        self.stopping = False

    def forward(self, signum: int, _frame: object = None) -> None:
        self.stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def fork_workers(self) -> None:
        signal.signal(signal.SIGTERM, self.forward)
        signal.signal(signal.SIGINT, self.forward)
        for index in range(self.settings.workers):
            pid = os.fork()
            if pid == 0:  # the worker: runs the service, never returns
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = 1
                try:
                    code = run(self.settings, self.make_app, serve_metrics=False)
                finally:
                    logging.shutdown()
                    os._exit(code)
            self.children[pid] = index
        _log.info("started %d workers: %s", self.settings.workers, sorted(self.children))

    def wait_all(self, on_exit: Callable[[int], None]) -> int:
        """Wait for every worker; one that fails stops the rest. 0 when all exited 0."""
        status = 0
        while self.children:
            pid, wait_status = os.wait()
            code = os.waitstatus_to_exitcode(wait_status)
            index = self.children.pop(pid, -1)
            on_exit(pid)
            if code != 0:
                status = 1
                _log.error("worker %d (pid %d) exited with %d", index, pid, code)
                if not self.stopping:  # let the orchestrator restart the whole pod
                    self.forward(signal.SIGTERM)
        return status


def supervise(settings: Settings, make_app: MakeApp | None = None) -> int:
    """Fork the workers, forward signals, serve the aggregated metrics, collect exit codes."""
    if "grpc" in sys.modules:
        raise RuntimeError("workers must fork before gRPC is imported")
    if not settings.metrics_address:
        supervisor = Supervisor(settings, make_app)
        supervisor.fork_workers()
        status = supervisor.wait_all(lambda _pid: None)
        _log.info("all workers stopped")
        return status
    with tempfile.TemporaryDirectory(prefix="todo-metrics-") as metrics_dir:
        supervisor = Supervisor(dataclasses.replace(settings, metrics_multiprocess_dir=metrics_dir), make_app)
        supervisor.fork_workers()
        from prometheus_client import multiprocess  # noqa: PLC0415 (after the fork, see module doc)

        from service.infrastructure.observability.metrics import MetricsEndpoint  # noqa: PLC0415

        try:
            endpoint = MetricsEndpoint(settings.metrics_address, multiprocess_dir=metrics_dir)
        except StartupError as error:
            _log.error("%s", error)
            supervisor.forward(signal.SIGTERM)
            supervisor.wait_all(lambda _pid: None)
            return 1
        try:
            status = supervisor.wait_all(lambda pid: multiprocess.mark_process_dead(pid, metrics_dir))  # type: ignore[no-untyped-call]
        finally:
            endpoint.close()
    _log.info("all workers stopped")
    return status
