"""The composition root: real defaults, fakes by keyword."""

from __future__ import annotations

from service.application.todo_entry import CreateTodo, TodoDraft
from service.bootstrap import bootstrap
from service.infrastructure.config import MongoSettings, Settings, TracingSettings
from service.infrastructure.observability.telemetry import Telemetry
from service.infrastructure.persistence.memory.store import InMemoryStore
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from service.infrastructure.persistence.mongo.store import MongoStore
from tests.support.fakes import FakeClock, SequentialIds


async def test_fakes_passed_as_keywords_are_the_ones_used(clock: FakeClock, ids: SequentialIds) -> None:
    repository = InMemoryTodoRepository()
    app = bootstrap(Settings(), repository=repository, clock=clock, ids=ids)
    created = await app.todos.create(CreateTodo(todo=TodoDraft(content="wired")))
    assert (created.id, created.created_at) == ("id-0001", clock.current)
    assert await repository.get("id-0001") == created
    assert isinstance(app.store, InMemoryStore)
    await app.close()


async def test_defaults_are_the_in_memory_store_and_fresh_telemetry() -> None:
    app = bootstrap(Settings())
    created = await app.todos.create(CreateTodo(todo=TodoDraft(content="real defaults")))
    assert len(created.id) == 32
    assert await app.store.check()
    assert app.telemetry.tracer_provider is None
    assert app.telemetry.metrics.registry is not None
    await app.close()


async def test_mongodb_settings_give_the_mongodb_store_without_connecting() -> None:
    settings = Settings(mongodb=MongoSettings(uri="mongodb://127.0.0.1:1/", database="wired", driver="pymongo"))
    app = bootstrap(settings)
    assert isinstance(app.store, MongoStore)
    assert app.store.description == "MongoDB database 'wired' through pymongo"
    await app.close()


async def test_tracing_comes_from_the_settings_unless_telemetry_is_passed() -> None:
    traced = bootstrap(Settings(tracing=TracingSettings(exporters=("console",))))
    assert traced.telemetry.tracer_provider is not None
    await traced.close()
    telemetry = Telemetry()
    assert (
        bootstrap(Settings(tracing=TracingSettings(exporters=("console",))), telemetry=telemetry).telemetry is telemetry
    )
