"""The todo.v1.TodoService servicer: request -> command -> use case -> response.

No business rules here: messages are mapped by `todo_entry_mapper`, errors
by `errors`; the servicer only sequences the two around the use case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from service.application.todo_entry import TodoEntryService
from service.infrastructure.auth import TokenAuthenticator
from service.infrastructure.grpc import todo_entry_mapper as mapper
from service.infrastructure.grpc.handlers import Context, Parser, RpcObserver, unary_handler
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TodoService"].full_name


class TodoServicer(pb_grpc.TodoServiceServicer):
    """Serves todo.v1.TodoService from the TodoEntryService use cases."""

    def __init__(
        self, todos: TodoEntryService, observer: RpcObserver, authenticator: TokenAuthenticator | None = None
    ) -> None:
        self._todos = todos
        self._observer = observer
        self._authenticator = authenticator

    async def CreateTodo(self, request: pb.CreateTodoRequest, context: Context) -> pb.CreateTodoResponse:
        entry = await self._todos.create(mapper.create_command(request))
        return pb.CreateTodoResponse(todo=mapper.to_message(entry))

    async def GetTodo(self, request: pb.GetTodoRequest, context: Context) -> pb.GetTodoResponse:
        entry = await self._todos.get(request.id)
        return pb.GetTodoResponse(todo=mapper.to_message(entry))

    async def ListTodos(self, request: pb.ListTodosRequest, context: Context) -> pb.ListTodosResponse:
        page = await self._todos.list(mapper.list_command(request))
        return pb.ListTodosResponse(
            todos=[mapper.to_message(entry) for entry in page.entries],
            next_page_token=page.next_page_token,
        )

    async def UpdateTodo(self, request: pb.UpdateTodoRequest, context: Context) -> pb.UpdateTodoResponse:
        entry = await self._todos.update(mapper.update_command(request))
        return pb.UpdateTodoResponse(todo=mapper.to_message(entry))

    async def DeleteTodo(self, request: pb.DeleteTodoRequest, context: Context) -> pb.DeleteTodoResponse:
        await self._todos.delete(request.id, request.etag)
        return pb.DeleteTodoResponse()

    async def AddTag(self, request: pb.AddTagRequest, context: Context) -> pb.AddTagResponse:
        entry = await self._todos.add_tag(request.id, request.tag)
        return pb.AddTagResponse(todo=mapper.to_message(entry))

    async def RemoveTag(self, request: pb.RemoveTagRequest, context: Context) -> pb.RemoveTagResponse:
        entry = await self._todos.remove_tag(request.id, request.tag)
        return pb.RemoveTagResponse(todo=mapper.to_message(entry))

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        """The RPC handlers of this servicer, keyed by method name."""
        methods: dict[str, tuple[Callable[[Any, Context], Awaitable[Message]], Parser[Message]]] = {
            "CreateTodo": (self.CreateTodo, pb.CreateTodoRequest),
            "GetTodo": (self.GetTodo, pb.GetTodoRequest),
            "ListTodos": (self.ListTodos, pb.ListTodosRequest),
            "UpdateTodo": (self.UpdateTodo, pb.UpdateTodoRequest),
            "DeleteTodo": (self.DeleteTodo, pb.DeleteTodoRequest),
            "AddTag": (self.AddTag, pb.AddTagRequest),
            "RemoveTag": (self.RemoveTag, pb.RemoveTagRequest),
        }
        return {
            name: unary_handler(SERVICE_NAME, name, method, parser, self._observer, authenticator=self._authenticator)
            for name, (method, parser) in methods.items()
        }
