"""The MongoDB store: one client per process, Motor or PyMongo's async client.

Motor (the default, as the design names it) is past its end of life; PyMongo's
`AsyncMongoClient` is its successor with the same collection API, so the
repository is written once against that API and both drivers run it
(`TODO_MONGODB_DRIVER=motor|pymongo`).

Every call goes through `MongoStore.bounded()`: it is limited by what is left
of the RPC's deadline and by the configured maximum (PyMongo's client-side
operation timeout, `pymongo.timeout`), and driver failures leave it as the
domain's StoreUnavailableError or StoreTimeoutError, never as a driver error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pymongo
from opentelemetry.trace import SpanKind, Tracer
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError, ServerSelectionTimeoutError

from service.domain.errors import StoreTimeoutError, StoreUnavailableError
from service.infrastructure.config import MongoSettings
from service.infrastructure.deadline import time_left

_log = logging.getLogger(__name__)

DEADLINE_RESERVE_SECONDS = 0.1
COLLECTION = "todos"

# The indexes the repository's queries rely on; created idempotently when the
# database first answers. All of them work on MongoDB and on FerretDB v1 (no
# sparse, partial or TTL indexes).
INDEXES = [
    # Idempotent CreateTodo: one entry per request key (always set, see mapper).
    IndexModel([("request_key", ASCENDING)], name="request_key_unique", unique=True),
    # ListTodos without filters: newest first, keyset on (create_time, _id).
    IndexModel([("create_time", DESCENDING), ("_id", DESCENDING)], name="newest_first"),
    # ListTodos filtered on done / on a tag, still in keyset order.
    IndexModel([("done", ASCENDING), ("create_time", DESCENDING), ("_id", DESCENDING)], name="done_newest_first"),
    IndexModel([("tags", ASCENDING), ("create_time", DESCENDING), ("_id", DESCENDING)], name="tag_newest_first"),
]


def _client(settings: MongoSettings) -> Any:
    options: dict[str, Any] = {
        "tz_aware": True,
        "appname": "todo-service",
        "serverSelectionTimeoutMS": int(settings.server_selection_timeout_seconds * 1000),
        "connectTimeoutMS": int(settings.connect_timeout_seconds * 1000),
        "timeoutMS": int(settings.operation_timeout_seconds * 1000),
        # Chosen on purpose, whatever the URI says (these keywords win over it):
        # - a write is acknowledged once a majority of the replica set has it
        #   (journaled): an acknowledged write survives the loss of the primary;
        # - reads see only majority-committed data, so a reply never shows an
        #   entry that a failover could still roll back; reads go to the primary
        #   (the default), so a caller reads its own acknowledged writes;
        # - writes and reads are retried once by the driver after a network error
        #   or a failover (every write here is safe to retry: inserts carry a
        #   unique request key, updates and deletes are compare-and-set on version).
        "w": "majority",
        "readConcernLevel": "majority",
        "retryWrites": True,
        "retryReads": True,
    }
    if settings.driver == "motor":
        from motor.motor_asyncio import AsyncIOMotorClient  # noqa: PLC0415 (only the chosen driver loads)

        return AsyncIOMotorClient(settings.uri, **options)
    return pymongo.AsyncMongoClient(settings.uri, **options)


def _deadline_bound(maximum: float) -> float | None:
    """The timeout the RPC's deadline sets when it is tighter than `maximum` (the client's `timeoutMS`), else None."""
    left = time_left()
    if left is None:
        return None
    # Keep a little of the RPC's time to answer with a proper status before
    # the client's own deadline fires.
    left -= min(DEADLINE_RESERVE_SECONDS, left * 0.1)
    if left <= 0:
        raise StoreTimeoutError("the request's deadline passed before the database was asked")
    return left if left < maximum else None


def _translated(error: PyMongoError, timeout: float, deadline_spent: bool) -> tuple[str, Exception | None]:
    """The outcome of a failed call and the store error it becomes (None: re-raise the driver's).

    `deadline_spent`: the call was bounded by the RPC's deadline and used all of
    it. A server selection that ran out of that time (a slow database whose new
    connections are still in their handshake) is the caller's deadline, not
    an outage: STORE_TIMEOUT, which clients do not retry, instead of
    STORE_UNAVAILABLE, which they would, on a database that is only slow.
    """
    if isinstance(error, ServerSelectionTimeoutError) and not deadline_spent:
        _log.warning("database unavailable: %s", error)
        return "unavailable", StoreUnavailableError("the database is unavailable")
    if error.timeout:
        _log.warning("database call timed out after %.3fs: %s", timeout, error)
        return "timeout", StoreTimeoutError("the database did not answer in time")
    if isinstance(error, ConnectionFailure):
        _log.warning("database connection failed: %s", error)
        return "unavailable", StoreUnavailableError("the database is unavailable")
    return "error", None


def _client_span(tracer: Tracer, operation: str, database: str) -> contextlib.AbstractContextManager[object]:
    """The CLIENT span of one database call (OpenTelemetry's database conventions)."""
    return tracer.start_as_current_span(
        f"mongodb {operation}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system": "mongodb",
            "db.operation.name": operation,
            "db.namespace": database,
            "db.collection.name": COLLECTION,
        },
    )


class MongoStore:
    """The client, the `todos` collection, readiness and close."""

    def __init__(
        self,
        settings: MongoSettings,
        observe: Callable[[str, str, float], None] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """`observe(operation, outcome, seconds)` is told of every call; `tracer` gets a span per call."""
        self.settings = settings
        self._observe = observe
        self._tracer = tracer
        self.description = f"MongoDB database {settings.database!r} through {settings.driver}"
        self.client = _client(settings)
        self.collection: Any = self.client[settings.database][COLLECTION]
        self.ready = False
        self._indexes_created = False
        self._failures = 0

    @contextmanager
    def bounded(self, operation: str) -> Iterator[None]:
        """Bound the database calls inside by the RPC deadline and the maximum; time and trace them.

        One generator for the whole call (it runs on every database call): the
        span only when tracing is on, and a `pymongo.timeout` only when the
        RPC's deadline is tighter than the client's own `timeoutMS` (the
        configured maximum), which bounds every operation anyway.
        """
        start = time.perf_counter()
        outcome = "error"
        span = None if self._tracer is None else _client_span(self._tracer, operation, self.settings.database)
        timeout = self.settings.operation_timeout_seconds
        tighter = None
        try:
            if span is not None:
                span.__enter__()
            tighter = _deadline_bound(timeout)
            if tighter is None:
                yield
            else:
                timeout = tighter
                with pymongo.timeout(timeout):
                    yield
            outcome = "ok"
        except DuplicateKeyError:
            outcome = "duplicate_key"
            raise
        except StoreTimeoutError:
            outcome = "timeout"
            raise
        except PyMongoError as error:
            spent = tighter is not None and time.perf_counter() - start >= timeout
            outcome, translated = _translated(error, timeout, spent)
            if translated is None:
                raise
            raise translated from error
        finally:
            if span is not None:
                span.__exit__(*sys.exc_info())
            if self._observe is not None:
                self._observe(operation, outcome, time.perf_counter() - start)

    def ensure_ready(self) -> None:
        """Fail fast while the readiness check says the database is not usable."""
        if not self.ready:
            raise StoreUnavailableError("the database is not reachable or not ready yet")

    async def check(self) -> bool:
        """Ping; on the first success, create the indexes. Updates `ready`."""
        try:
            with pymongo.timeout(self.settings.server_selection_timeout_seconds):
                await self.client.admin.command("ping")
                if not self._indexes_created:
                    await self._create_indexes()
        except PyMongoError as error:
            if self.ready or not self._failures:
                _log.warning("database not usable: %s", error)
            self._failures += 1
            self.ready = False
            return False
        self._failures = 0
        if not self.ready:
            _log.info("database ready: %s", self.description)
        self.ready = True
        return True

    async def _create_indexes(self) -> None:
        """Create the missing indexes, one at a time.

        One at a time and only the missing ones: FerretDB v1.24 drops the
        connection (a server-side panic) on a multi-index createIndexes whose
        indexes all exist already.
        """
        existing = await self.collection.index_information()
        for index in INDEXES:
            if index.document["name"] not in existing:
                await self.collection.create_indexes([index])
        self._indexes_created = True

    async def close(self) -> None:
        self.ready = False
        result = self.client.close()
        if asyncio.iscoroutine(result):  # PyMongo's async client; Motor closes synchronously
            await result
