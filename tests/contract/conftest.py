"""The repository under contract test, one parameter per implementation.

Every test in this package runs once per store kind: the in-memory store, and
MongoDB (the session's MongoDB-wire server, see tests/support/mongo_server.py) through
Motor and through PyMongo's async client, each on a fresh database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.domain.repository import TodoRepository
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from service.infrastructure.persistence.mongo.store import MongoStore
from service.infrastructure.persistence.mongo.todo_entry import MongoTodoRepository
from tests.support.stores import STORE_KINDS, cleaned_up, ready, settings_for


@pytest.fixture(params=STORE_KINDS)
async def repository(request: pytest.FixtureRequest) -> AsyncIterator[TodoRepository]:
    """A fresh, empty repository of the parametrised kind."""
    settings = settings_for(request.param, request)
    if settings.mongodb is None:
        yield InMemoryTodoRepository()
        return
    store = MongoStore(settings.mongodb)
    async with cleaned_up(settings, store):
        await ready(store)
        yield MongoTodoRepository(store)
