"""Process lifecycle: settings -> container -> server -> wait for a signal -> drain.

Start-up opens things in order; shutdown closes them in reverse (an
AsyncExitStack). SIGTERM or SIGINT turns every health status NOT_SERVING,
then stops the server with a grace period so in-flight RPCs finish, then
exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from service.container import build_container
from service.infrastructure.config import ConfigError, Settings
from service.infrastructure.grpc.server import start_server

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
    running = await start_server(container, settings.grpc_address)
    host = settings.grpc_address.rsplit(":", 1)[0]
    await running.set_serving(True)
    _log.info("serving todo.v1.TodoService on %s:%d", host, running.port)
    await stop.wait()
    _log.info("shutting down: health NOT_SERVING, draining for up to %.1fs", settings.shutdown_grace_seconds)
    await running.stop(settings.shutdown_grace_seconds)
    _log.info("stopped")


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
