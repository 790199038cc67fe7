"""Open any store the service supports, fresh and empty, for a test.

Kinds: `memory`, `mongo-motor`, `mongo-pymongo`. A Mongo kind gets its own
database on the session's MongoDB-wire server, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from service.application.ports import Clock
from service.bootstrap import bootstrap
from service.infrastructure.config import Driver, MongoSettings, Settings
from service.infrastructure.grpc.server import RunningServer, start_server
from service.infrastructure.observability.telemetry import Telemetry
from service.infrastructure.persistence.mongo.store import MongoStore
from tests.support.mongo_server import MongoServer, skip_unless_atomic

STORE_KINDS = ["memory", "mongo-motor", "mongo-pymongo"]


def settings_for(kind: str, request: pytest.FixtureRequest, **overrides: object) -> Settings:
    """Settings of a service on `kind`, bound to port 0 on loopback."""
    mongodb = None
    if kind.startswith("mongo-"):
        server: MongoServer = request.getfixturevalue("mongo_server")
        skip_unless_atomic(request, server)
        driver: Driver = "motor" if kind == "mongo-motor" else "pymongo"
        mongodb = MongoSettings(uri=server.uri, database=server.database_name(), driver=driver)
    elif kind != "memory":
        raise ValueError(f"unknown store kind {kind!r}")
    return Settings(grpc_address="127.0.0.1:0", mongodb=mongodb, **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def cleaned_up(settings: Settings, store: object) -> AsyncIterator[None]:
    """Drop the test database (if any) and close the store afterwards."""
    try:
        yield
    finally:
        if isinstance(store, MongoStore):
            assert settings.mongodb is not None
            await store.client.drop_database(settings.mongodb.database)
            await store.close()


async def ready(store: object) -> None:
    if isinstance(store, MongoStore) and not await store.check():
        pytest.fail(f"the test database did not become ready: {store.description}")


@asynccontextmanager
async def serving(
    kind: str, request: pytest.FixtureRequest, *, clock: Clock | None = None, telemetry: Telemetry | None = None
) -> AsyncIterator[RunningServer]:
    """A started, ready server on a fresh store of `kind`, on a loopback port; `clock`, `telemetry` go to bootstrap."""
    settings = settings_for(kind, request)
    app = bootstrap(settings, clock=clock, telemetry=telemetry)
    async with cleaned_up(settings, app.store):
        await ready(app.store)
        running = await start_server(app.api, settings)
        try:
            await running.set_serving(True)
            yield running
        finally:
            await running.stop(0.5)
