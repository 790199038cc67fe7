"""The composition root: settings (and, in tests, fakes) in, a finished App out.

Modelled on cosmicpython's `bootstrap`: one function, every dependency a
keyword argument whose default is the real thing, so tests and benchmarks
pass fakes (`bootstrap(settings, repository=fake, clock=fake_clock)`) and
production passes none. It runs at start-up inside the event loop, never at
import time. The punq container lives inside this function only; what leaves
it are finished objects, and nothing else resolves from a container.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from dataclasses import dataclass

import punq

from service.application.page_token import PageTokenCodec
from service.application.ports import Clock, IdGenerator, RandomIdGenerator, SystemClock
from service.application.todo_entry import TodoEntryService
from service.domain.repository import TodoRepository
from service.infrastructure.auth import TokenAuthenticator
from service.infrastructure.authz import PolicyFile
from service.infrastructure.config import Settings
from service.infrastructure.config.credentials import page_token_keys
from service.infrastructure.config.quotas import QuotaLimits
from service.infrastructure.grpc.admission import Admission
from service.infrastructure.grpc.gate import CallGate, PrincipalLabels
from service.infrastructure.grpc.handlers import CallPolicy
from service.infrastructure.grpc.observer import RpcObserver
from service.infrastructure.grpc.quota import Quotas
from service.infrastructure.grpc.todo_entry import TodoApi, TodoServicer
from service.infrastructure.observability.telemetry import Telemetry
from service.infrastructure.persistence.memory.store import InMemoryStore
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from service.infrastructure.persistence.mongo.store import MongoStore
from service.infrastructure.persistence.mongo.todo_entry import MongoTodoRepository
from service.infrastructure.persistence.store import Store


@dataclass(frozen=True, slots=True)
class App:
    """The finished objects of one service process; `close()` releases what bootstrap opened.

    `api` is what the server set-up serves: the servicer under the call policy.
    """

    settings: Settings
    api: TodoApi
    todos: TodoEntryService
    page_tokens: PageTokenCodec
    store: Store
    telemetry: Telemetry

    async def close(self) -> None:
        """Close the store, then flush the spans (the reverse of opening)."""
        try:
            await self.store.close()
        finally:
            self.telemetry.shutdown()


def bootstrap(
    settings: Settings,
    *,
    repository: TodoRepository | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    telemetry: Telemetry | None = None,
) -> App:
    """Wire the service from `settings`; a keyword replaces one real dependency.

    - `repository`: the entries' store. Default: MongoDB when `settings.mongodb`
      is set, else the in-memory store. A repository passed in is always
      ready and has nothing to close (the lifecycle sees an in-memory store).
    - `clock`, `ids`: the time and the ids of new entries (default: the wall
      clock in UTC, 128 random bits).
    - `telemetry`: metrics and tracer (default: fresh metrics and the tracing
      the settings ask for).
    """
    telemetry = telemetry or Telemetry.from_settings(settings)
    policy = call_policy(settings, telemetry)
    knobs = settings.server
    telemetry.metrics.overload_limits_are(
        {
            "max_concurrent_rpcs": knobs.max_concurrent_rpcs,
            "max_concurrent_streams": knobs.max_concurrent_streams,
            "overload_protection": int(knobs.overload_protection),
        }
    )
    store: Store
    if repository is not None:
        store = InMemoryStore()
    elif settings.mongodb is not None:
        mongo = MongoStore(settings.mongodb, telemetry.metrics.database_observer(), telemetry.tracer)
        store, repository = mongo, MongoTodoRepository(mongo)
    else:
        store, repository = InMemoryStore(), InMemoryTodoRepository()
        logging.getLogger("service").warning(
            "TODO_MONGODB_URI is not set: using the in-memory store, entries are lost when the process stops"
        )
    container = punq.Container()
    # Abstract keys (the repository ABC, the Clock and IdGenerator protocols) are
    # registered, never resolved: mypy's type-abstract check stays on everywhere.
    container.register(TodoRepository, instance=repository)
    container.register(Clock, instance=clock or SystemClock())
    container.register(IdGenerator, instance=ids or RandomIdGenerator())
    container.register(PageTokenCodec, instance=PageTokenCodec(page_token_key(settings)))
    labels = policy.gate.labels if policy.gate is not None else None
    container.register(RpcObserver, instance=RpcObserver(telemetry.metrics, telemetry.tracer, labels))
    container.register(TodoEntryService, scope=punq.Scope.singleton, max_page_bytes=page_budget(settings))
    container.register(TodoServicer, scope=punq.Scope.singleton)
    if getattr(repository, "work_outlives_cancellation", False):
        policy = dataclasses.replace(policy, outlast=True)
    container.register(TodoApi, scope=punq.Scope.singleton, policy=policy)
    return App(
        settings=settings,
        api=container.resolve(TodoApi),
        todos=container.resolve(TodoEntryService),
        page_tokens=container.resolve(PageTokenCodec),
        store=store,
        telemetry=telemetry,
    )


def call_policy(settings: Settings, telemetry: Telemetry) -> CallPolicy:
    """Authentication, admission and the time limit of every todo.v1.TodoService call, from the settings."""
    authenticator = None
    if settings.auth_tokens is not None:  # read with the settings: the authenticator starts from it
        authenticator = TokenAuthenticator(settings.auth_tokens, settings.auth_tokens_reload_seconds)
        authenticator.report_to(telemetry.metrics)
    limit = settings.server.max_concurrent_rpcs
    gate = call_gate(settings, authenticator, telemetry)
    return CallPolicy(
        authenticator=authenticator if gate is None else None,  # with a gate, the gate checks the token
        admission=Admission(limit, counter=telemetry.metrics)
        if limit
        else None,  # 0: no limit, so no admission step on the per-RPC path
        max_rpc_seconds=settings.server.max_rpc_seconds,
        gate=gate,
        max_send_bytes=settings.server.max_send_message_bytes,
    )


def call_gate(settings: Settings, authenticator: TokenAuthenticator | None, telemetry: Telemetry) -> CallGate | None:
    """Principals, the policy and quotas: None when callers cannot be told apart and no policy is set."""
    certificates = settings.tls is not None and settings.tls.client_ca_file is not None
    if authenticator is None and not certificates and settings.authz_policy is None:
        return None  # the per-RPC path stays as it was: nothing to work out
    policy = None
    named: set[str] = set()
    if authenticator is not None:
        named.update(authenticator.principal_names)
    if settings.authz_policy is not None:
        source = settings.authz_policy
        policy = PolicyFile(source.path, source.policy, source.signature, settings.authz_policy_reload_seconds)
        policy.report_to(telemetry.metrics)
        named.update(source.policy.principals)
    knobs = settings.server
    overrides = {
        name: QuotaLimits(
            int(fields.get("max_concurrent_rpcs", knobs.max_concurrent_rpcs_per_principal)),
            fields.get("rate_per_second", knobs.rate_per_principal),
            fields.get("burst", 0.0),
        )
        for name, fields in (settings.quota_file or {}).items()
    }
    named.update(overrides)
    quotas = None
    if knobs.max_concurrent_rpcs_per_principal or knobs.rate_per_principal or overrides:
        default = QuotaLimits(knobs.max_concurrent_rpcs_per_principal, knobs.rate_per_principal)
        quotas = Quotas(default, overrides, counter=telemetry.metrics)
    return CallGate(
        authenticator=authenticator,
        certificates=certificates,
        policy=policy,
        quotas=quotas,
        labels=PrincipalLabels(named),
        counter=telemetry.metrics,
    )


# What a ListTodos response holds besides its entries (the page token, framing), with room to spare.
PAGE_RESERVE_BYTES = 16 * 1024


def page_budget(settings: Settings) -> int:
    """The bytes a page's entries may take: under the send limit by the reserve (a quarter of small limits)."""
    limit = settings.server.max_send_message_bytes
    return limit - min(PAGE_RESERVE_BYTES, limit // 4)


def page_token_key(settings: Settings) -> list[bytes]:
    """The configured keys (the first signs, every one verifies), else 32 random bytes for this process only.

    A random key is safe with the in-memory store: its tokens cannot outlive
    the entries they page through, and Settings.from_env requires a
    configured secret with MongoDB and with several workers.
    """
    if settings.page_token_secret is not None:
        return [key.encode() for key in page_token_keys(settings.page_token_secret)]
    return [secrets.token_bytes(32)]
