"""The todo.v1.TodoService servicer: request -> command -> use case -> response.

No business rules here: messages are mapped by `todo_entry_mapper`, errors
by `errors`; the servicer only sequences the two around the use case. What
each call goes through around it (authentication, admission, time limit,
metrics, span, access line) is not the servicer's: `TodoApi` puts the
servicer behind the per-RPC observer and the call policy that the
composition root built, and hands the server set-up its handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc

from service.application.todo_entry import TodoEntryService
from service.infrastructure.grpc import todo_entry_mapper as mapper
from service.infrastructure.grpc.handlers import CallPolicy, UnknownMethodHandler, service_handlers, token_refusal
from service.infrastructure.grpc.observer import Context, Metadata, RpcObserver
from service.infrastructure.grpc.reflection import Guard
from service.infrastructure.observability.logs import principal_var
from service.infrastructure.observability.metrics import Metrics
from todo.v1 import todo_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["TodoService"]
SERVICE_NAME = SERVICE.full_name


class TodoServicer:
    """Serves todo.v1.TodoService from the TodoEntryService use cases.

    One coroutine per RPC of the contract, named like the RPC; the handler
    table is derived from the service descriptor (`service_handlers`), so an
    RPC added to the proto and not implemented here stops the server at start.
    """

    def __init__(self, todos: TodoEntryService) -> None:
        self._todos = todos

    async def CreateTodo(self, request: pb.CreateTodoRequest, context: Context) -> pb.CreateTodoResponse:
        entry = await self._todos.create(mapper.create_command(request))
        response = pb.CreateTodoResponse()
        mapper.fill(response.todo, entry)
        return response

    async def GetTodo(self, request: pb.GetTodoRequest, context: Context) -> pb.GetTodoResponse:
        entry = await self._todos.get(request.id)
        response = pb.GetTodoResponse()
        mapper.fill(response.todo, entry)
        return response

    async def ListTodos(self, request: pb.ListTodosRequest, context: Context) -> pb.ListTodosResponse:
        page = await self._todos.list(mapper.list_command(request))
        response = pb.ListTodosResponse(next_page_token=page.next_page_token)
        todos = response.todos
        for entry in page.entries:
            mapper.fill(todos.add(), entry)
        return response

    async def UpdateTodo(self, request: pb.UpdateTodoRequest, context: Context) -> pb.UpdateTodoResponse:
        entry = await self._todos.update(mapper.update_command(request))
        response = pb.UpdateTodoResponse()
        mapper.fill(response.todo, entry)
        return response

    async def DeleteTodo(self, request: pb.DeleteTodoRequest, context: Context) -> pb.DeleteTodoResponse:
        await self._todos.delete(request.id, request.etag)
        return pb.DeleteTodoResponse()

    async def AddTag(self, request: pb.AddTagRequest, context: Context) -> pb.AddTagResponse:
        entry = await self._todos.add_tag(request.id, request.tag)
        response = pb.AddTagResponse()
        mapper.fill(response.todo, entry)
        return response

    async def RemoveTag(self, request: pb.RemoveTagRequest, context: Context) -> pb.RemoveTagResponse:
        entry = await self._todos.remove_tag(request.id, request.tag)
        response = pb.RemoveTagResponse()
        mapper.fill(response.todo, entry)
        return response


@dataclass(frozen=True, slots=True)
class TodoApi:
    """todo.v1.TodoService as the server serves it: the servicer behind the per-RPC observer and the call policy."""

    servicer: TodoServicer
    observer: RpcObserver
    policy: CallPolicy = field(default_factory=CallPolicy)

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        """The RPC handlers, one per method of the contract's service."""
        return service_handlers(self.servicer, SERVICE, self.observer, self.policy)

    def unknown_method_handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The handler of every path nothing serves: METHOD_NOT_FOUND (with tokens on, for the service's
        path, only after the token check; with a policy, after the token check and the policy, for every path)."""
        gate = self.policy.gate
        # With a policy every path is decided by it (as grpc-go's authz does); without one, only the service's
        # path needs a token first, so a tool probing for reflection still hears UNIMPLEMENTED.
        guard = self.reflection_guard() if gate is not None and gate.has_policy else None
        authenticator = self.policy.authenticator or (gate.authenticator if gate is not None else None)
        return UnknownMethodHandler(SERVICE_NAME, authenticator, guard)

    def reflection_guard(self) -> Guard | None:
        """Reflection (and unknown paths) behind the API's authentication and policy (None: neither is on).

        With tokens, a reflection stream needs a valid token (grpcurl: `-H 'authorization: Bearer ...'`);
        with a policy, its principal must be allowed the reflection method's path, as grpc-go's authz
        decides for every method. mTLS needs nothing here: the handshake already asked for a certificate.
        """
        gate, authenticator = self.policy.gate, self.policy.authenticator
        if gate is not None:

            def gated(metadata: Metadata, context: Context, path: str) -> grpc.Status | None:
                principal, refusal = gate.enter(metadata, context, path, quota=False)
                principal_var.set(principal.name)
                return refusal

            return gated
        if authenticator is not None:

            def tokens(metadata: Metadata, context: Context, path: str) -> grpc.Status | None:
                return token_refusal(authenticator, metadata)

            return tokens
        return None

    @property
    def metrics(self) -> Metrics:
        return self.observer.metrics
