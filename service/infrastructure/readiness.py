"""Readiness: keep the health status in step with the store.

The server listens from the start with health NOT_SERVING; this monitor asks
the store every interval and reports each change (SERVING when the store
answers, NOT_SERVING when it stops answering), without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from service.infrastructure.persistence.store import Store

_log = logging.getLogger(__name__)


async def watch_readiness(store: Store, report: Callable[[bool], Awaitable[None]], interval: float) -> None:
    """Run until cancelled: check `store`, `report` every change of readiness."""
    serving: bool | None = None
    while True:
        try:
            ready = await store.check()
        except Exception:
            _log.exception("readiness check failed")
            ready = False
        if ready != serving:
            _log.log(logging.INFO if ready else logging.WARNING, "readiness: %s", "SERVING" if ready else "NOT_SERVING")
            await report(ready)
            serving = ready
        await asyncio.sleep(interval)
