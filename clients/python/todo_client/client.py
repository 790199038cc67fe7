"""TodoClient: one async method per RPC of todo.v1.TodoService."""

# ASYNC109 suggests asyncio.timeout over a `timeout` parameter; here `timeout` is
# the gRPC deadline, which travels to the server (and on to its database calls).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc
from todo_client.errors import ClientClosedError, ThrottledError, TodoError, error_from_rpc
from todo_client.models import Todo, TodoPage
from todo_client.overload import (
    DEFAULT_OVERLOAD_POLICY,
    REJECTED_CODES,
    AdaptiveThrottle,
    ConnectionSlots,
    OverloadPolicy,
)
from todo_client.retry import DEFAULT_RETRY_POLICY, ChannelOption, RetryPolicy, RetryThrottle, channel_options

DEFAULT_TIMEOUT = 5.0
THROTTLED = "CLIENT_THROTTLED"  # the reason of a ThrottledError (client-side, not one of the contract's)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# An RFC 6750 bearer token (b64token): printable ASCII, no spaces.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)
Metadata = tuple[tuple[str, str], ...]


def _datetime(timestamp: Timestamp) -> datetime:
    return _EPOCH + timedelta(0, timestamp.seconds, timestamp.nanos // 1000)


def _todo(message: pb.Todo) -> Todo:
    """The dataclass of a message (this runs for every entry of every page: keep it lean)."""
    created, updated = message.create_time, message.update_time
    create_time = _datetime(created)
    # An entry never changed has update_time == create_time: share the datetime.
    same = updated.seconds == created.seconds and updated.nanos == created.nanos
    return Todo(
        message.id,
        message.content,
        tuple(message.tags[:]),
        message.done,
        create_time,
        create_time if same else _datetime(updated),
        message.etag,
    )


def _tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):  # a str is an Iterable[str] too: "home" would become four tags
        raise TypeError("tags must be a collection of strings, not one string")
    return list(tags)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive or None, not {timeout}")


def _translated(error: Exception, closed: bool) -> Exception | None:
    """The client's exception for a gRPC one, or None to let it through."""
    if isinstance(error, grpc.aio.AioRpcError):
        return error_from_rpc(error)
    if closed and isinstance(error, grpc.aio.UsageError):
        return ClientClosedError("the TodoClient is closed")
    return None


def is_loopback(target: str) -> bool:
    """Whether a gRPC target names this machine only: localhost, 127.0.0.0/8, ::1 or a unix socket."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    rest = target
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:", "passthrough:///"):
        if rest.startswith(scheme):
            rest = rest.removeprefix(scheme)
            break
    hosts = []
    for address in rest.split(","):  # ipv4:a:port,b:port
        if address.startswith("["):
            hosts.append(address[1 : address.find("]")])
        elif address.count(":") > 1:
            hosts.append(address)  # a bare IPv6 address
        else:
            hosts.append(address.rsplit(":", 1)[0] if ":" in address else address)
    return bool(hosts) and all(_loopback_host(host) for host in hosts)


def _loopback_host(host: str) -> bool:
    if host.lower() in {"localhost", "ip6-localhost", "ip6-loopback"} or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TodoClient:
    """A typed async client for todo.v1.TodoService.

    Make one per process (or per target) and share it: it holds a few
    channels (connections), which multiplex concurrent calls. Like its
    grpc.aio channels, it belongs to the event loop it was made in. Use
    `TodoClient.connect(...)` to build the channels with the retry policy and
    credentials, and close the client when done (`async with`, or
    `await client.close()`).

    Every method takes `timeout` (seconds) to override the client's default
    deadline for that call; all retry attempts of a call share its deadline.
    Failures raise a subclass of `TodoError` (see `todo_client.errors`).
    With an `OverloadPolicy` (the default) the client keeps its load off an
    overloaded service: a stream budget per connection and adaptive throttling
    (see `todo_client.overload`); a call it refuses itself raises `ThrottledError`.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel | Sequence[grpc.aio.Channel],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY_POLICY,
        metadata: Sequence[tuple[str, str]] = (),
        overload: OverloadPolicy | None = DEFAULT_OVERLOAD_POLICY,
    ) -> None:
        """Wrap existing channels (one, or one per connection); the client owns them from now on.

        `retry` governs the retries the client makes itself (UpdateTodo and
        DeleteTodo with an etag); the channel's own retries come from its
        options: build it with `todo_client.channel_options(retry)`.
        `metadata` is sent with every call. `timeout=None`: no default deadline.
        `overload`: the stream budget (its `streams_per_connection` on each
        channel given; `connections` is what `connect` opens) and the adaptive
        throttling; None: neither.
        """
        _check_timeout(timeout)
        channels = [channel] if isinstance(channel, grpc.aio.Channel) else list(channel)
        if not channels:
            raise ValueError("TodoClient needs at least one channel")
        self._channels = channels
        self._timeout = timeout
        self._retry = retry
        self._throttle = RetryThrottle(retry) if retry is not None else None
        self._metadata: Metadata | None = tuple(metadata) or None
        self._closed = False
        self._refused = 0  # calls that found no free stream in time
        self._overload = overload
        self._slots = None if overload is None else ConnectionSlots(len(channels), overload.streams_per_connection)
        self._adaptive = (
            None
            if overload is None or not overload.throttle_ratio
            else AdaptiveThrottle(
                overload.throttle_ratio,
                overload.throttle_window_seconds,
                overload.throttle_padding,
                overload.throttle_min_requests,
            )
        )
        stubs: list[pb_grpc.TodoServiceAsyncStub] = [pb_grpc.TodoServiceStub(c) for c in channels]
        # The multi-callables are made once, one per channel; a call costs no lookup.
        self._create = [stub.CreateTodo for stub in stubs]
        self._get = [stub.GetTodo for stub in stubs]
        self._list = [stub.ListTodos for stub in stubs]
        self._update = [stub.UpdateTodo for stub in stubs]
        self._delete = [stub.DeleteTodo for stub in stubs]
        self._add_tag = [stub.AddTag for stub in stubs]
        self._remove_tag = [stub.RemoveTag for stub in stubs]

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
        tls_server_name: str | None = None,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY_POLICY,
        options: Sequence[ChannelOption] = (),
        overload: OverloadPolicy | None = DEFAULT_OVERLOAD_POLICY,
        token_over_plaintext: bool = False,
    ) -> Self:
        """A client on a new channel to `target` (e.g. "localhost:50051", "dns:///todo.internal:443").

        The channel connects lazily, on the first call; call from a coroutine.

        - plaintext by default; `tls=True` for TLS, checking the server against
          `root_certificates` (PEM) or, without them, the system's roots;
        - `client_certificate` and `client_key` (PEM, both or neither) for mutual TLS;
        - `tls_server_name`: the name to check the server's certificate against
          when it differs from the target's host;
        - `token`: sent as `authorization: Bearer <token>` on every call (as
          call credentials over TLS, as plain metadata over plaintext). Over
          plaintext only to a loopback target (localhost, 127.0.0.0/8, ::1, a
          unix socket): anywhere else anyone on the path could read and replay
          it, so it is a ValueError unless `token_over_plaintext=True` says the
          network encrypts for you (a service mesh with mTLS);
        - `timeout`: the default deadline of every call in seconds (None: none);
        - `retry`: the retry policy (None: no retries);
        - `options`: extra gRPC channel options, winning over the client's own;
        - `overload`: `overload.connections` channels, each its own connection
          to every replica, and the client's overload control (see
          `todo_client.overload`); None: one channel and no overload control.
        """
        _check_timeout(timeout)  # before the channel exists, so that nothing leaks
        if (client_certificate is None) != (client_key is None):
            raise ValueError("client_certificate and client_key go together: give both or neither")
        if not tls and (root_certificates is not None or client_certificate is not None or tls_server_name):
            raise ValueError("root_certificates, client_certificate/client_key and tls_server_name need tls=True")
        if token is not None and not _TOKEN.fullmatch(token):
            raise ValueError("token must be a non-empty RFC 6750 bearer token (letters, digits, -._~+/ and =)")
        if token is not None and not tls and not token_over_plaintext and not is_loopback(target):
            raise ValueError(
                f"refusing to send a bearer token in plaintext to {target!r}, which is not loopback: use tls=True, "
                "or token_over_plaintext=True when the network encrypts for you (a service mesh with mTLS)"
            )
        extra = list(options)
        if tls_server_name:
            extra.insert(0, ("grpc.ssl_target_name_override", tls_server_name))
        connections = 1 if overload is None else overload.connections
        if connections > 1:
            # Channels with the same arguments share one connection per address (gRPC's global
            # subchannel pool); a pool of their own gives each channel its own connections.
            extra.insert(0, ("grpc.use_local_subchannel_pool", 1))
        channel_args = channel_options(retry, extra)
        metadata: Metadata = ()
        channels: list[grpc.aio.Channel] = []
        if tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates, private_key=client_key, certificate_chain=client_certificate
            )
            if token is not None:
                credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
            channels = [grpc.aio.secure_channel(target, credentials, options=channel_args) for _ in range(connections)]
        else:
            # gRPC refuses call credentials on an insecure channel: send the header ourselves.
            if token is not None:
                metadata = (("authorization", f"Bearer {token}"),)
            channels = [grpc.aio.insecure_channel(target, options=channel_args) for _ in range(connections)]
        return cls(channels, timeout=timeout, retry=retry, metadata=metadata, overload=overload)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        """Close the channels; calls still running get `grace` seconds, then are cancelled."""
        self._closed = True
        await asyncio.gather(*(channel.close(grace) for channel in self._channels))

    @property
    def throttled(self) -> int:
        """Calls this client has refused itself so far (adaptive throttling and a full stream budget)."""
        return self._refused + (self._adaptive.rejected if self._adaptive is not None else 0)

    # -- the RPCs ---------------------------------------------------------

    async def create_todo(
        self,
        content: str,
        *,
        tags: Iterable[str] = (),
        done: bool = False,
        todo_id: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Todo:
        """Create an entry. `todo_id`: the id to give it (else the server picks one).

        `request_id` is the idempotency key: a repeated call with the same key
        returns the entry the first call created and creates nothing. Without
        one the client makes up a UUID for this call, so that its own retries
        never create twice; pass your own to make your retries safe as well.
        """
        request = pb.CreateTodoRequest(
            todo=pb.Todo(content=content, tags=_tags(tags), done=done),
            todo_id=todo_id or "",
            request_id=request_id or str(uuid.uuid4()),
        )
        response = await self._call(self._create, request, timeout)
        return _todo(response.todo)

    async def get_todo(self, id: str, *, timeout: float | None = None) -> Todo:
        """The entry with this id, or NotFoundError."""
        response = await self._call(self._get, pb.GetTodoRequest(id=id), timeout)
        return _todo(response.todo)

    async def list_todos(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        search: str = "",
        tags: Iterable[str] = (),
        done: bool | None = None,
        timeout: float | None = None,
    ) -> TodoPage:
        """One page of entries, newest first, filtered by content text, tags (all of them) and done.

        `page_size` 0 means the server's default (50); `page_token` is the
        previous page's `next_page_token`, with the same filters.
        """
        request = pb.ListTodosRequest(
            page_size=page_size, page_token=page_token, search=search, tags=_tags(tags), done=done
        )
        response = await self._call(self._list, request, timeout)
        return TodoPage(todos=tuple(map(_todo, response.todos)), next_page_token=response.next_page_token)

    async def iter_todos(
        self,
        *,
        search: str = "",
        tags: Iterable[str] = (),
        done: bool | None = None,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[Todo]:
        """Every matching entry, newest first, fetched page by page (`timeout` is per page).

        Paging is keyset based: entries created meanwhile never make it skip
        or repeat an entry that existed when the iteration began. Nothing is
        held open between pages, so breaking out of the loop early is fine.
        """
        tags = _tags(tags)
        token = ""
        while True:
            page = await self.list_todos(
                page_size=page_size, page_token=token, search=search, tags=tags, done=done, timeout=timeout
            )
            for todo in page.todos:
                yield todo
            token = page.next_page_token
            if not token:
                return

    async def update_todo(
        self,
        id: str,
        *,
        content: str | None = None,
        tags: Iterable[str] | None = None,
        done: bool | None = None,
        etag: str | None = None,
        timeout: float | None = None,
    ) -> Todo:
        """Change the fields given (at least one; `tags` replaces the whole set, `()` clears it).

        With `etag`, only if the entry is unchanged since (ConcurrentModificationError
        otherwise); such a call is retried on UNAVAILABLE, one without an etag is not.
        """
        todo = pb.Todo(id=id, etag=etag or "")
        paths: list[str] = []
        if content is not None:
            todo.content = content
            paths.append("content")
        if tags is not None:
            todo.tags.extend(_tags(tags))
            paths.append("tags")
        if done is not None:
            todo.done = done
            paths.append("done")
        if not paths:
            raise ValueError("update_todo needs at least one of content, tags and done")
        request = pb.UpdateTodoRequest(todo=todo, update_mask=FieldMask(paths=paths))
        if etag:
            response = await self._conditional(self._update, request, timeout)
        else:
            response = await self._call(self._update, request, timeout)
        return _todo(response.todo)

    async def delete_todo(self, id: str, *, etag: str | None = None, timeout: float | None = None) -> None:
        """Delete the entry; with `etag`, only if it is unchanged since (retried on UNAVAILABLE then)."""
        request = pb.DeleteTodoRequest(id=id, etag=etag or "")
        if etag:
            await self._conditional(self._delete, request, timeout)
        else:
            await self._call(self._delete, request, timeout)

    async def add_tag(self, id: str, tag: str, *, timeout: float | None = None) -> Todo:
        """Add one tag; adding a present tag changes nothing (the etag stays)."""
        response = await self._call(self._add_tag, pb.AddTagRequest(id=id, tag=tag), timeout)
        return _todo(response.todo)

    async def remove_tag(self, id: str, tag: str, *, timeout: float | None = None) -> Todo:
        """Remove one tag; removing an absent tag changes nothing (the etag stays)."""
        response = await self._call(self._remove_tag, pb.RemoveTagRequest(id=id, tag=tag), timeout)
        return _todo(response.todo)

    # -- plumbing ---------------------------------------------------------

    async def _call(
        self,
        methods: list[grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT]],
        request: RequestT,
        timeout: float | None,
    ) -> ResponseT:
        try:
            return await self._attempt(methods, request, self._timeout if timeout is None else timeout)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as error:
            translated = _translated(error, self._closed)
            if translated is None:
                raise
            raise translated from error

    async def _attempt(
        self,
        methods: list[grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT]],
        request: RequestT,
        timeout: float | None,
        first: bool = True,
    ) -> ResponseT:
        """One attempt on a channel with a free stream; a call's first attempt goes through the adaptive throttle
        (when on): its retries are bounded by the retry policy's own throttling instead."""
        adaptive, slots = self._adaptive, self._slots
        if first and adaptive is not None and not adaptive.allow():
            raise _throttled("the service has been refusing calls; adaptive throttling refused this one locally")
        if slots is None:
            return await methods[0](request, timeout=timeout, metadata=self._metadata)
        index = slots.take()
        if index is None:
            index, timeout = await self._wait_for_stream(slots, timeout)
        try:
            response = await methods[index](request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            if adaptive is not None:
                if error.code() in REJECTED_CODES:
                    adaptive.refused()
                else:
                    adaptive.accepted()
            raise
        finally:
            slots.give_back(index)
        if adaptive is not None:
            adaptive.accepted()
        return response

    async def _wait_for_stream(self, slots: ConnectionSlots, timeout: float | None) -> tuple[int, float | None]:
        """A free stream within the policy's queueing bound, and the deadline left; else ThrottledError."""
        assert self._overload is not None  # slots come with a policy
        policy = self._overload
        wait = (
            policy.max_queue_seconds
            if timeout is None
            else min(policy.max_queue_seconds, timeout * policy.max_queue_fraction)
        )
        loop = asyncio.get_running_loop()
        began = loop.time()
        index = await slots.wait(wait)
        if index is None:
            # Not counted by the adaptive throttle: it weighs what the service answered, and the stream budget
            # already bounds what this client sends (counted, the two together sent less than the service took).
            self._refused += 1
            raise _throttled(
                f"every connection's {policy.streams_per_connection} streams stayed busy for {wait:.3g} s; "
                "the call was not sent"
            )
        return index, None if timeout is None else max(0.001, timeout - (loop.time() - began))

    async def _conditional(
        self,
        methods: list[grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT]],
        request: RequestT,
        timeout: float | None,
    ) -> ResponseT:
        """A call that carries an etag: retried on UNAVAILABLE like the service config does."""
        retry, throttle = self._retry, self._throttle
        if retry is None or throttle is None:
            return await self._call(methods, request, timeout)
        loop = asyncio.get_running_loop()
        budget = self._timeout if timeout is None else timeout
        deadline = None if budget is None else loop.time() + budget
        attempt = 1
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            try:
                response = await self._attempt(methods, request, remaining, first=attempt == 1)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError) as error:
                translated = _translated(error, self._closed)
                if translated is None:
                    raise
                retryable = isinstance(translated, TodoError) and translated.code is grpc.StatusCode.UNAVAILABLE
                # A failed attempt costs a throttle token whether or not it is the last one.
                if not (retryable and throttle.failed() and attempt < retry.max_attempts):
                    raise translated from error
                delay = retry.backoff(attempt)
                if deadline is not None and loop.time() + delay >= deadline:
                    raise translated from error
                await asyncio.sleep(delay)
                attempt += 1
            else:
                throttle.succeeded()
                return response


def _throttled(message: str) -> ThrottledError:
    return ThrottledError(message, code=grpc.StatusCode.UNAVAILABLE, reason=THROTTLED)
