"""Process lifecycle: settings -> container -> server -> wait for a signal -> drain.

Start-up opens things in order; shutdown closes them in reverse (an
AsyncExitStack). SIGTERM or SIGINT turns every health status NOT_SERVING,
keeps serving for the drain delay while traffic moves away, stops the server
with a grace period so in-flight RPCs finish, closes the store, exits 0.

With TODO_WORKERS=N > 1 the process forks N workers before any gRPC object
exists (nothing here imports gRPC or prometheus_client at module level); they
share the port through SO_REUSEPORT, each with its own database client. The
parent forwards SIGTERM/SIGINT, serves the aggregated metrics, and exits 0
when every worker did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from service.infrastructure.config import ConfigError, Settings
from service.infrastructure.observability.logs import configure_logging

if TYPE_CHECKING:
    from service.infrastructure.grpc.server import RunningServer
    from service.infrastructure.observability.telemetry import Telemetry

_log = logging.getLogger("service")


def telemetry_from_env(environ: Mapping[str, str]) -> Telemetry:
    """Fresh metrics, and a tracer provider when the OTEL_* variables ask for one."""
    from service.infrastructure.observability.telemetry import Telemetry  # noqa: PLC0415 (see module doc)
    from service.infrastructure.observability.tracing import tracer_provider_from_env  # noqa: PLC0415

    return Telemetry(tracer_provider=tracer_provider_from_env(environ))


async def serve(
    settings: Settings,
    stop: asyncio.Event | None = None,
    overrides: Mapping[type[Any], object] | None = None,
    telemetry: Telemetry | None = None,
    serve_metrics: bool = True,
) -> None:
    """Run the service until `stop` is set (by default: until SIGTERM or SIGINT).

    `overrides` replaces registrations of the container (see build_container).
    """
    from service.container import build_container  # noqa: PLC0415 (see module doc)
    from service.infrastructure.grpc.server import start_server  # noqa: PLC0415
    from service.infrastructure.observability.metrics import MetricsEndpoint  # noqa: PLC0415
    from service.infrastructure.observability.telemetry import Telemetry  # noqa: PLC0415
    from service.infrastructure.persistence.store import Store  # noqa: PLC0415
    from service.infrastructure.readiness import watch_readiness  # noqa: PLC0415

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    telemetry = telemetry or Telemetry()
    container = build_container(settings, overrides, telemetry)
    store: Store = container.resolve(Store)
    database_up = telemetry.metrics.database_up
    async with AsyncExitStack() as stack:
        stack.callback(telemetry.shutdown)  # flush spans last
        stack.push_async_callback(store.close)
        if settings.metrics_address and serve_metrics:
            endpoint = MetricsEndpoint(settings.metrics_address, telemetry.metrics.registry)
            stack.callback(endpoint.close)
            _log.info("metrics on http://%s/metrics", _with_port(settings.metrics_address, endpoint.port))
        running = await start_server(container, settings.grpc_address)
        stack.push_async_callback(_drain, running, settings.shutdown_drain_seconds, settings.shutdown_grace_seconds)
        _log.info(
            "serving todo.v1.TodoService on %s with the %s",
            _with_port(settings.grpc_address, running.port),
            store.description,
        )

        async def report(ready: bool) -> None:
            database_up.set(1 if ready else 0)
            await running.set_serving(ready)

        monitor = asyncio.create_task(
            watch_readiness(store, report, settings.health_interval_seconds), name="readiness"
        )
        stack.push_async_callback(_cancel, monitor)  # stopped first
        await stop.wait()
    _log.info("stopped")


def _with_port(address: str, port: int) -> str:
    return f"{address.rsplit(':', 1)[0]}:{port}"


async def _drain(running: RunningServer, drain: float, grace: float) -> None:
    """SIGTERM path: NOT_SERVING everywhere, let traffic move away, then stop gracefully."""
    await running.begin_shutdown()
    _log.info("shutting down: health NOT_SERVING; still serving for %.1fs while traffic moves away", drain)
    await asyncio.sleep(drain)
    _log.info("shutting down: no new RPCs; in-flight RPCs get up to %.1fs", grace)
    await running.stop(grace)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _run_worker(settings: Settings, overrides: Mapping[type[Any], object] | None, serve_metrics: bool = True) -> int:
    try:
        telemetry = telemetry_from_env(os.environ)
    except ConfigError as error:
        print(f"todo-service: configuration error: {error}", file=sys.stderr)
        return 2
    running = serve(settings, overrides=overrides, telemetry=telemetry, serve_metrics=serve_metrics)
    try:
        if settings.event_loop == "uvloop":
            import uvloop  # noqa: PLC0415 (only when chosen)

            uvloop.run(running)
        else:
            asyncio.run(running)
    except RuntimeError as error:
        if str(error).startswith("cannot listen on"):
            _log.error("%s", error)
            return 1
        raise
    return 0


class _Supervisor:
    """The parent of TODO_WORKERS worker processes."""

    def __init__(self, settings: Settings, overrides: Mapping[type[Any], object] | None) -> None:
        self.settings = settings
        self.overrides = overrides
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
                    code = _run_worker(self.settings, self.overrides, serve_metrics=False)
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


def _supervise(settings: Settings, overrides: Mapping[type[Any], object] | None) -> int:
    """Fork the workers, forward signals, serve aggregated metrics, collect exit codes."""
    if "grpc" in sys.modules or "prometheus_client" in sys.modules:
        raise RuntimeError("workers must fork before gRPC or prometheus_client is imported")
    metrics_dir = None
    if settings.metrics_address:
        metrics_dir = tempfile.TemporaryDirectory(prefix="todo-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    supervisor = _Supervisor(settings, overrides)
    supervisor.fork_workers()
    if metrics_dir is None:
        status = supervisor.wait_all(lambda _pid: None)
    else:
        from prometheus_client import multiprocess  # noqa: PLC0415 (after the fork, see module doc)

        from service.infrastructure.observability.metrics import MetricsEndpoint  # noqa: PLC0415

        endpoint = MetricsEndpoint(settings.metrics_address)  # aggregates the workers' files
        try:
            status = supervisor.wait_all(multiprocess.mark_process_dead)
        finally:
            endpoint.close()
            metrics_dir.cleanup()
    _log.info("all workers stopped")
    return status


def main(overrides: Mapping[type[Any], object] | None = None) -> int:
    """Entry point of `python -m service`; returns the exit status."""
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as error:
        print(f"todo-service: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level_number, settings.log_format)
    if settings.workers > 1:
        return _supervise(settings, overrides)
    return _run_worker(settings, overrides)
