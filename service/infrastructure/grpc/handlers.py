"""The per-RPC path around a servicer method, kept close to zero cost.

`unary_handler` builds a handler over raw bytes for one method. Per RPC it:
takes or makes the request id (`x-request-id`, returned in the trailing
metadata and put on every log line of the RPC), records the deadline for
outbound calls, parses the request (a malformed message is INVALID_ARGUMENT,
never INTERNAL), runs the method, maps errors through the error table, opens
a server span when tracing is on, counts and times the RPC, and writes one
access log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from random import getrandbits
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from service.application.todo_entry import REQUEST_ID_PATTERN
from service.domain.errors import DomainError
from service.infrastructure.auth import TokenAuthenticator, TokenCheck
from service.infrastructure.authz import Principal
from service.infrastructure.deadline import set_deadline_in
from service.infrastructure.grpc.admission import Admission
from service.infrastructure.grpc.errors import (
    ErrorReason,
    concurrency_limit_status,
    malformed_request_status,
    response_too_large_status,
    rich_status,
    status_for,
    unhandled_exception_status,
)
from service.infrastructure.grpc.gate import TOKEN_STATUS, CallGate
from service.infrastructure.grpc.observer import Context, Metadata, MethodObserver, RpcObserver
from service.infrastructure.observability.logs import principal_var, request_id_var

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)
ParsedT_co = TypeVar("ParsedT_co", bound=Message, covariant=True)

REQUEST_ID_HEADER = "x-request-id"
_log = logging.getLogger("service.grpc")


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What every call of the application service goes through around its method, built by the composition root.

    `authenticator`: the bearer-token check (None: no authentication);
    `admission`: the cap on calls in progress (None: no cap); `max_rpc_seconds`:
    the deadline assumed for a call that carries none (None: unbounded);
    `gate`: the principal, the authorization policy and the principal's quota
    (None: no principal is worked out; with a gate, it checks the token). The
    per-RPC handler (`unary_handler`) applies them in its one coroutine.
    """

    authenticator: TokenAuthenticator | None = None
    admission: Admission | None = None
    max_rpc_seconds: float | None = None
    gate: CallGate | None = None  # principals, policy, quotas (None: none of them; `authenticator` alone checks tokens)
    outlast: bool = False  # the store's work outlives a cancelled call (Motor): slots wait for it (`unary_handler`)
    max_send_bytes: int | None = None  # a larger response fails with RESPONSE_TOO_LARGE, recorded as such


class Parser(Protocol[ParsedT_co]):
    """A generated message class, as far as parsing goes."""

    def FromString(self, serialized: bytes) -> ParsedT_co: ...  # noqa: N802 (protobuf's name)


def request_id_of(metadata: Metadata) -> str:
    """The caller's `x-request-id` when it is well-formed, else 32 random hex characters."""
    for key, value in metadata:
        if key == REQUEST_ID_HEADER and isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value):
            return value
    # A correlation id, not a secret: Python's generator (reseeded in a forked worker) is enough, and it
    # costs a third of what os.urandom's system call does, on every RPC that brings no id.
    return getrandbits(128).to_bytes(16).hex()


def _forget(error: BaseException) -> None:
    """Drop the traceback of a handled error, so that no reference cycle keeps the call alive.

    The traceback of an error that reached the handler holds the handler's
    frame, which holds the context and so the call; the error itself often
    sits in a reference cycle (an exception raised inside a context manager is
    held by the manager's `__aexit__` frame, which its own traceback holds). The
    call, and its HTTP/2 stream, then live until the next garbage collection,
    and gRPC core counts such streams against the connection's limit: measured,
    20 calls that timed out on a slow database left their connection refusing
    every stream for as long as no collection ran.
    """
    error.__traceback__ = None


async def abort_quietly(context: Context, status: grpc.Status, request_id: str | None = None) -> None:
    """Send `status` as the call's only answer, trailers only, and leave no cycle behind.

    `context.abort()` sends the status at once (trailers only, so a client may
    still retry the call) and raises an AbortError that grpc.aio also keeps on
    the call's state. Raised through the caller's frame, that exception's
    traceback would hold the frame and so the context: a reference cycle that
    keeps the call, and its HTTP/2 stream, alive until the next garbage
    collection. gRPC core counts such streams against the connection's limit,
    so with overload protection a connection that got
    TODO_MAX_CONCURRENT_STREAMS errors would have every new stream refused
    until then. So the error is caught here and its traceback dropped; when
    the handler returns, grpc.aio raises the kept AbortError from its own
    frames and ends the call. Every refusal of every service goes through here.
    `request_id`: sent back in the `x-request-id` trailer.
    """
    trailers = status.trailing_metadata
    if request_id is not None:
        trailers = ((REQUEST_ID_HEADER, request_id), *trailers)
    try:
        await context.abort(status.code, status.details, trailers)
    except grpc.aio.AbortError as error:
        _forget(error)


async def _abort(context: Context, status: grpc.Status) -> None:
    """`abort_quietly` with the RPC's request id."""
    await abort_quietly(context, status, request_id_var.get() or "")


def peer_host(peer: str) -> str:
    """The address part of gRPC's peer string, without the port: `ipv4:10.0.0.7:5123` -> `ipv4:10.0.0.7`.

    Connections of one client share it (each has its own port), so limits per
    peer hold for the client, not for each of its connections.
    """
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return f"{kind}:{rest[: rest.find(']') + 1]}"
    if kind == "ipv4":
        return f"{kind}:{rest.rpartition(':')[0]}"
    return peer


def token_refusal(authenticator: TokenAuthenticator, metadata: Metadata) -> grpc.Status | None:
    """BEARER_TOKEN_MISSING or _INVALID, or None when the metadata carries a known token."""
    verdict = authenticator.check(metadata)
    return None if verdict is TokenCheck.VALID else TOKEN_STATUS[verdict]


def _refusal(
    authenticator: TokenAuthenticator | None, admission: Admission | None, metadata: Metadata
) -> grpc.Status | None:
    """Why a call may not run (no valid token, then no free slot), or None: it runs, holding a slot of `admission`."""
    if authenticator is not None and (refusal := token_refusal(authenticator, metadata)) is not None:
        return refusal
    if admission is not None and not admission.try_enter():
        return concurrency_limit_status(admission.limit, admission.retry_after_seconds)
    return None


def _bound_outbound_calls(context: Context, max_rpc_seconds: float | None) -> None:
    """The deadline of the RPC's outbound calls: the call's own, else `max_rpc_seconds` (None: unbounded)."""
    remaining = context.time_remaining()
    if remaining is not None:
        set_deadline_in(remaining)
    elif max_rpc_seconds is not None:
        set_deadline_in(max_rpc_seconds)


def _release_when_done(
    admission: Admission | None, gate: CallGate | None, principal: Principal | None, work: asyncio.Future[Any]
) -> None:
    """The slots of a cancelled RPC, released once its method's task has ended (its outcome is dropped)."""
    if not work.cancelled():
        error = work.exception()  # retrieved, so asyncio does not log it as never retrieved
        if error is not None:
            _forget(error)
    if admission is not None:
        admission.leave()
    if gate is not None and principal is not None:
        gate.leave(principal)


def _gated_refusal(
    gate: CallGate, admission: Admission | None, metadata: Metadata, context: Context, path: str
) -> tuple[Principal, grpc.Status | None]:
    """Who calls and why the call may not run (token, policy, quota, then no free slot), or None: it runs,
    holding its principal's quota slot and a slot of `admission`."""
    principal, failure = gate.enter(metadata, context, path)
    principal_var.set(principal.name)
    if failure is None and admission is not None and not admission.try_enter():
        gate.leave(principal)
        failure = concurrency_limit_status(admission.limit, admission.retry_after_seconds)
    return principal, failure


def unary_handler(  # noqa: PLR0915 (one coroutine per RPC, on purpose: see `handle`)
    service: str,
    name: str,
    method: Callable[[RequestT, Context], Awaitable[ResponseT]],
    request_type: Parser[RequestT],
    observer: RpcObserver,
    *,
    authenticator: TokenAuthenticator | None = None,
    admission: Admission | None = None,
    max_rpc_seconds: float | None = None,
    gate: CallGate | None = None,
    outlast: bool = False,
    max_send_bytes: int | None = None,
) -> grpc.RpcMethodHandler[bytes, bytes]:
    """A unary-unary handler over raw bytes around a servicer method.

    `outlast`: the store's calls run on after their caller is cancelled (Motor
    runs each one in a thread that nothing stops), so the method runs as a
    task of its own and a cancelled RPC keeps its admission and quota slots
    until that task ends: a caller that sends and cancels cannot make the
    server hold more database calls than TODO_MAX_CONCURRENT_RPCS. It costs a
    task per RPC, so it is on with Motor only.

    `admission` caps the calls in progress (over it: RESOURCE_EXHAUSTED before
    any work); `max_rpc_seconds` bounds the outbound calls of an RPC that
    carries no deadline, as if it had carried that one.
    """
    parse = request_type.FromString
    watch = MethodObserver(service, name, observer)
    full_method = watch.full_method

    # One coroutine per RPC: the token check, the admission cap and the error
    # table are branches here, not a coroutine level each.
    async def handle(raw: bytes, context: Context) -> bytes:  # noqa: PLR0912, PLR0915 (one coroutine per RPC)
        start = time.perf_counter()
        metadata: Metadata = tuple(context.invocation_metadata() or ())  # read once per RPC
        request_id = request_id_of(metadata)
        request_id_var.set(request_id)
        _bound_outbound_calls(context, max_rpc_seconds)
        traced = watch.begin(metadata, request_id)
        code = grpc.StatusCode.UNKNOWN
        held: Admission | None = None  # the admission whose slot this RPC holds
        principal: Principal | None = None  # with a gate: who is calling
        quota: Principal | None = None  # with a gate: the principal whose quota slot this RPC holds
        work: asyncio.Future[ResponseT] | None = None  # with `outlast`: the method, as a task of its own
        try:
            if gate is None:
                failure = _refusal(authenticator, admission, metadata)
            else:
                principal, failure = _gated_refusal(gate, admission, metadata, context, full_method)
                quota = principal if failure is None else None
            if failure is None:
                held = admission
                try:
                    request = parse(raw)
                except DecodeError:
                    failure = malformed_request_status()
                else:
                    try:
                        if outlast:  # the store's work runs on after a cancellation: the slots wait for it
                            work = asyncio.ensure_future(method(request, context))
                            response = await asyncio.shield(work)
                        else:
                            response = await method(request, context)
                    except DomainError as error:
                        failure = status_for(error)
                        _forget(error)
                    except Exception as error:
                        _log.exception("unexpected error in %s", full_method)
                        failure = unhandled_exception_status(request_id)
                        _forget(error)
                    else:
                        body = response.SerializeToString()
                        if max_send_bytes is None or len(body) <= max_send_bytes:
                            context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
                            code = grpc.StatusCode.OK
                            return body
                        # gRPC would fail the send itself, after this call was recorded as OK: say so now.
                        failure = response_too_large_status(max_send_bytes)
            code = failure.code
            await _abort(context, failure)
            return b""  # not sent: the call has its status already
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            if work is not None and not work.done():  # keep the slots until the store's call has ended
                work.add_done_callback(functools.partial(_release_when_done, held, gate, quota))
                held = quota = None
            raise
        finally:
            if held is not None:
                held.leave()
            if quota is not None and gate is not None:
                gate.leave(quota)
            watch.end(context, code, time.perf_counter() - start, traced, request_id, principal=principal)

    return grpc.unary_unary_rpc_method_handler(handle)


def service_handlers(
    servicer: object, service: ServiceDescriptor, observer: RpcObserver, policy: CallPolicy
) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
    """A handler for every method of `service`, keyed by method name, each under `policy`.

    Derived from the descriptor: the servicer's coroutine of the same name
    serves each method, the request type is the method's input type. A method
    the servicer lacks, or a streaming one, is an error at start-up, never an
    UNIMPLEMENTED at call time.
    """
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {}
    for descriptor in service.methods:
        if descriptor.client_streaming or descriptor.server_streaming:
            raise TypeError(f"{descriptor.full_name} is a streaming method; only unary methods are served")
        method = getattr(servicer, descriptor.name, None)
        if not callable(method):
            raise TypeError(f"{type(servicer).__name__} does not implement {descriptor.full_name}")
        request_type: Parser[Message] = message_factory.GetMessageClass(descriptor.input_type)
        handlers[descriptor.name] = unary_handler(
            service.full_name,
            descriptor.name,
            method,
            request_type,
            observer,
            authenticator=policy.authenticator,
            admission=policy.admission,
            max_rpc_seconds=policy.max_rpc_seconds,
            gate=policy.gate,
            outlast=policy.outlast,
            max_send_bytes=policy.max_send_bytes,
        )
    return handlers


if TYPE_CHECKING:  # generic in grpc-stubs only
    _GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericHandler = grpc.GenericRpcHandler


class UnknownMethodHandler(_GenericHandler):
    """Unknown paths of `service`: UNIMPLEMENTED with the reason METHOD_NOT_FOUND.

    With a policy (`guard`: the token check, then the authorization policy)
    every unknown path comes here, as grpc-go's authz decides before it looks
    for a handler; without one, a path of another service is left to gRPC's
    own UNIMPLEMENTED (no ErrorInfo), which tools probing for reflection
    expect. The first request message is awaited (at most a second) before
    the answer: a client still sending it when the call ended would see its
    send fail with INTERNAL instead of the status.

    Registered after every other handler, it is only consulted for a path
    nothing else serves, so it adds nothing to a served call. With tokens on,
    a path of `service` is told only after the token check: without that an
    unauthenticated caller could list the service's methods by probing names
    (a known one says UNAUTHENTICATED, an unknown one UNIMPLEMENTED).
    """

    def __init__(
        self,
        service: str,
        authenticator: TokenAuthenticator | None,
        guard: Callable[[Metadata, Context, str], grpc.Status | None] | None = None,
    ) -> None:
        self._prefix = f"/{service}/"
        self._authenticator = authenticator
        self._guard = guard

    async def _refuse(self, method: str, requests: object, context: Context) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.read(), FIRST_MESSAGE_SECONDS)
        metadata: Metadata = tuple(context.invocation_metadata() or ())
        request_id_var.set(request_id_of(metadata))
        refusal = None
        if self._guard is not None:  # the gate: token, then the policy, which covers every path (as grpc-go's)
            refusal = self._guard(metadata, context, method)
        elif method.startswith(self._prefix) and self._authenticator is not None:
            refusal = token_refusal(self._authenticator, metadata)
        await _abort(context, refusal or method_not_found_status(method[:128]))

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if self._guard is None and not method.startswith(self._prefix):
            return None  # gRPC's own UNIMPLEMENTED
        # stream-stream: any shape of call; the request is read, never parsed.
        return grpc.stream_stream_rpc_method_handler(functools.partial(self._refuse, method))


FIRST_MESSAGE_SECONDS = 1.0


@functools.lru_cache(maxsize=256)
def method_not_found_status(method: str) -> grpc.Status:
    return rich_status(ErrorReason.METHOD_NOT_FOUND, "Method not found!", metadata={"method": method})
