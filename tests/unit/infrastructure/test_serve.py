"""`serve`: the start-up heap is frozen once the process serves (the process's own server only)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from service import lifecycle
from service.bootstrap import bootstrap
from service.infrastructure.config import Settings


@pytest.mark.parametrize("freeze_heap", [True, False])
async def test_the_heap_is_frozen_once_serving_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, freeze_heap: bool
) -> None:
    frozen: list[bool] = []
    monkeypatch.setattr("service.lifecycle.gc.freeze", lambda: frozen.append(True))
    app = bootstrap(Settings(grpc_address="127.0.0.1:0"))
    serving = asyncio.create_task(lifecycle.serve(app, serve_metrics=False, freeze_heap=freeze_heap))
    for _ in range(500):  # until the readiness monitor runs: after the freeze point
        await asyncio.sleep(0.01)
        if any(task.get_name() == "readiness" for task in asyncio.all_tasks()):
            break
    else:
        pytest.fail("serve() did not reach the readiness monitor in 5 s")
    assert frozen == ([True] if freeze_heap else [])
    os.kill(os.getpid(), signal.SIGTERM)  # serve()'s own signal handler stops it
    await asyncio.wait_for(serving, 30)
