"""The lifecycle of one serving process: settings -> App -> server -> wait for a signal -> drain.

`run` builds the App inside the chosen event loop and serves it; `serve`
starts the server, logs the start-up summary, keeps health in step with the
store and, on SIGTERM or SIGINT, drains. The entry point (service/main.py)
calls `run` for a single process; the supervisor (service/supervisor.py)
calls it in each worker.

Start-up opens things in order; shutdown closes them in reverse (an
AsyncExitStack). SIGTERM or SIGINT turns every health status NOT_SERVING,
keeps serving for the drain delay while traffic moves away, stops the server
with a grace period so in-flight RPCs finish, closes the store, exits 0.

Nothing here imports gRPC or prometheus_client at module level: the
supervisor must fork before they are loaded. `run` returns the exit status:
0 after a clean stop, 1 when the service cannot start (an address in use).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from service.infrastructure.config import Settings
from service.infrastructure.startup import StartupError

if TYPE_CHECKING:
    from service.bootstrap import App
    from service.infrastructure.grpc.server import RunningServer

MakeApp = Callable[[Settings], "App"]
_log = logging.getLogger("service")


def run(settings: Settings, make_app: MakeApp | None = None, *, serve_metrics: bool = True) -> int:
    """Build the App inside the chosen event loop and serve it until SIGTERM or SIGINT; the exit status."""

    async def build_and_serve() -> None:
        if make_app is None:
            from service.bootstrap import bootstrap  # noqa: PLC0415 (see module doc)

            app = bootstrap(settings)
        else:
            app = make_app(settings)
        await serve(app, serve_metrics=serve_metrics, freeze_heap=True)

    try:
        if settings.event_loop == "uvloop":
            import uvloop  # noqa: PLC0415 (only when chosen)

            uvloop.run(build_and_serve())
        else:
            asyncio.run(build_and_serve())
    except StartupError as error:
        _log.error("%s", error)
        return 1
    return 0


async def serve(app: App, *, serve_metrics: bool = True, freeze_heap: bool = False) -> None:
    """Serve `app` until SIGTERM or SIGINT, then drain and close everything it opened.

    `serve_metrics=False`: a worker of several, whose metrics the supervisor serves.
    `freeze_heap=True` (the process's own server, not a test's): once serving,
    what start-up allocated is moved out of the garbage collector's reach.
    """
    from service.infrastructure.grpc.server import start_server  # noqa: PLC0415 (see module doc)
    from service.infrastructure.observability.metrics import MetricsEndpoint  # noqa: PLC0415
    from service.infrastructure.readiness import watch_readiness  # noqa: PLC0415

    settings = app.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    database_up = app.telemetry.metrics.database_up
    metrics_url = "off"
    async with AsyncExitStack() as stack:
        stack.push_async_callback(app.close)  # the store, then the spans: last
        if settings.metrics_address and serve_metrics:
            endpoint = MetricsEndpoint(settings.metrics_address, app.telemetry.metrics.registry)
            stack.callback(endpoint.close)
            metrics_url = f"http://{_with_port(settings.metrics_address, endpoint.port)}/metrics"
            _log.info("metrics on %s", metrics_url)
        elif settings.metrics_address:
            metrics_url = f"http://{settings.metrics_address}/metrics (served by the supervisor)"
        running = await start_server(app.api, settings)
        stack.push_async_callback(_drain, running, settings.shutdown_drain_seconds, settings.shutdown_grace_seconds)
        _log.info(
            "serving todo.v1.TodoService on %s (%s)",
            _with_port(settings.grpc_address, running.port),
            startup_summary(app, metrics_url, health_url(settings, running)),
        )

        async def report(ready: bool) -> None:
            database_up.set(1 if ready else 0)
            await running.set_serving(ready)

        if freeze_heap:
            # Start-up's objects (modules, descriptors, the app) live as long as
            # the process: frozen, no full collection walks them again.
            gc.collect()
            gc.freeze()
        monitor = asyncio.create_task(
            watch_readiness(app.store, report, settings.health_interval_seconds), name="readiness"
        )
        stack.push_async_callback(_cancel, monitor)  # stopped first
        if settings.gc_interval_seconds:
            collector = asyncio.create_task(collect_garbage(settings.gc_interval_seconds), name="gc")
            stack.push_async_callback(_cancel, collector)
        await stop.wait()
    _log.info("stopped")


async def collect_garbage(interval: float) -> None:
    """Run until cancelled: a collection of the young generations every `interval` seconds, in the event loop.

    gRPC core counts a call's HTTP/2 stream against its connection's limit until
    Python lets go of the call. A call kept alive by a reference cycle (grpc.aio's
    cancellation paths make some; the service's own handler leaves none) is let go
    of only by a collection, and Python's own, driven by allocations, may come
    seconds later: measured under a flood, a steady caller that kept its connections
    at the stream limit had its calls refused for seconds after it (0.3-0.9 of them
    OK per 250 ms; with this, 1.0 from the first 250 ms; a caller under the limit
    needs none of it). The young generations hold those calls; a full
    collection would also walk every entry of a large in-memory store (measured:
    CreateTodo cost 374 instead of 216 us of CPU with one every 0.25 s), this one
    about 0.1 ms.
    """
    while True:
        await asyncio.sleep(interval)
        gc.collect(1)


def health_url(settings: Settings, running: RunningServer) -> str:
    """Where the dedicated health listener is, or "off"."""
    if running.health_port is None:
        return "off"
    return _with_port(settings.health_address, running.health_port)


def startup_summary(app: App, metrics_url: str, health_listener: str = "off") -> str:
    """What is on, for the start-up line: store and driver, TLS, tokens, reflection, tracing, metrics, workers."""
    settings = app.settings
    tls = "off" if settings.tls is None else ("mTLS" if settings.tls.client_ca_file else "on")
    page_tokens = "configured secret" if settings.page_token_secret is not None else "random per-process secret"
    return "; ".join(
        (
            f"store: {app.store.description}",
            f"health listener: {health_listener}",
            f"page tokens: {page_tokens}",
            f"TLS: {tls}",
            f"tokens: {'required' if settings.auth_tokens else 'off'}",
            f"reflection: {'on' if settings.reflection else 'off'}",
            f"tracing: {', '.join(settings.tracing.exporters) or 'off'}",
            f"metrics: {metrics_url}",
            f"workers: {settings.workers}",
            f"event loop: {settings.event_loop}",
        )
    )


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
