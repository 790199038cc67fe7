"""The composition root: the one place that knows every concrete class.

`build_container` runs at start-up (inside the async main, never at import
time) and registers each adapter under the abstraction the inner layers ask
for. Tests call it with `overrides` to swap any registration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import punq

from service.application.page_token import PageTokenCodec
from service.application.ports import Clock, IdGenerator, RandomIdGenerator, SystemClock
from service.application.todo_entry import TodoEntryService
from service.domain.repository import TodoRepository
from service.infrastructure.auth import TokenAuthenticator
from service.infrastructure.config import Settings
from service.infrastructure.grpc.handlers import RpcObserver
from service.infrastructure.grpc.todo_entry import TodoServicer
from service.infrastructure.observability.telemetry import Telemetry
from service.infrastructure.persistence.memory.store import InMemoryStore
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from service.infrastructure.persistence.mongo.client import MongoStore
from service.infrastructure.persistence.mongo.todo_entry import MongoTodoRepository
from service.infrastructure.persistence.store import Store


def build_container(
    settings: Settings,
    overrides: Mapping[type[Any], object] | None = None,
    telemetry: Telemetry | None = None,
) -> punq.Container:
    """A container with every service registered as a singleton.

    `overrides` maps an abstraction to the instance to use instead of the
    default (for example a repository, a clock or an id generator in tests).
    `telemetry` carries the process's metrics and tracer (default: fresh
    metrics, tracing off).
    """
    overrides = dict(overrides or {})
    telemetry = telemetry or Telemetry()
    store: Store
    repository: TodoRepository
    if settings.mongodb is not None:
        mongo = MongoStore(settings.mongodb, telemetry.metrics.database_observer(), telemetry.tracer)
        store, repository = mongo, MongoTodoRepository(mongo)
    else:
        store, repository = InMemoryStore(), InMemoryTodoRepository()
        if TodoRepository not in overrides:
            logging.getLogger("service").warning(
                "TODO_MONGODB_URI is not set: using the in-memory store, entries are lost when the process stops"
            )
    defaults: dict[type[Any], object] = {
        Settings: settings,
        Store: store,
        TodoRepository: repository,
        PageTokenCodec: PageTokenCodec(settings.page_token_secret.encode()),
        Clock: SystemClock(),
        IdGenerator: RandomIdGenerator(),
        Telemetry: telemetry,
        RpcObserver: RpcObserver(telemetry.metrics, telemetry.tracer),
    }
    container = punq.Container()
    for service, instance in {**defaults, **overrides}.items():
        container.register(service, instance=instance)
    container.register(TodoEntryService, scope=punq.Scope.singleton)
    authenticator = TokenAuthenticator(settings.auth_tokens_file) if settings.auth_tokens_file else None
    container.register(TodoServicer, scope=punq.Scope.singleton, authenticator=authenticator)
    return container
