"""Process lifecycle: settings -> container -> server -> wait for a signal -> drain.

Start-up opens things in order; shutdown closes them in reverse (an
AsyncExitStack). SIGTERM or SIGINT turns every health status NOT_SERVING,
then stops the server with a grace period so in-flight RPCs finish, then
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from service.container import build_container
from service.infrastructure.config import ConfigError, Settings
from service.infrastructure.grpc.server import RunningServer, start_server
from service.infrastructure.persistence.store import Store
from service.infrastructure.readiness import watch_readiness

_log = logging.getLogger("service")


async def serve(
    settings: Settings,
    stop: asyncio.Event | None = None,
    overrides: Mapping[type[Any], object] | None = None,
) -> None:
    """Run the service until `stop` is set (by default: until SIGTERM or SIGINT).

    `overrides` replaces registrations of the container (see build_container).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    container = build_container(settings, overrides)
    store: Store = container.resolve(Store)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(store.close)  # closed last
        running = await start_server(container, settings.grpc_address)
        stack.push_async_callback(_drain, running, settings.shutdown_drain_seconds, settings.shutdown_grace_seconds)
        host = settings.grpc_address.rsplit(":", 1)[0]
        _log.info("serving todo.v1.TodoService on %s:%d with the %s", host, running.port, store.description)
        monitor = asyncio.create_task(
            watch_readiness(store, running.set_serving, settings.health_interval_seconds), name="readiness"
        )
        stack.push_async_callback(_cancel, monitor)  # stopped first
        await stop.wait()
    _log.info("stopped")


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


def main(overrides: Mapping[type[Any], object] | None = None) -> int:
    """Entry point of `python -m service`; returns the exit status."""
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as error:
        print(f"todo-service: configuration error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level_number,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(settings, overrides=overrides))
    except RuntimeError as error:
        if str(error).startswith("cannot listen on"):
            _log.error("%s", error)
            return 1
        raise
    return 0
