"""Server reflection that answers every symbol, over grpc.reflection.v1 and v1alpha.

grpcio-reflection's servicer asks protobuf's descriptor pool for a symbol; the
pool finds messages, enums, services and extensions, but not methods, fields
or enum values (upstream grpc/grpc#34743), so `ghz` without `--proto` and
`grpcurl describe todo.v1.TodoService.GetTodo` fail against it. It also
serves only v1alpha, and the whole default pool (every file any imported
library loaded), not the files of the served services.

This servicer indexes, once at start, a fixed file set: the files that declare
the served services, extra files (`files=`), and everything they import,
transitively (well-known types, google.api, google.rpc). It resolves every
name the protocol can ask for: services, methods, messages and their fields
and oneofs, nested types, enums, enum values (scoped like C++, as siblings of
their enum: `todo.v1.FIELD_VIOLATION`, and under their enum, the name grpcurl
prints: `todo.v1.ErrorReason.FIELD_VIOLATION`), extensions, and extension numbers of a
message. A file is answered together with its transitive dependencies,
requested file first; anything outside the set is NOT_FOUND.

grpcio-reflection ships only the v1alpha messages. grpc.reflection.v1 is the
same protocol with the package renamed (field for field), so the v1 file is
built here from the v1alpha one into a private descriptor pool (to describe
it), and both services share one servicer and the v1alpha wire codec.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, cast

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import DecodeError
from grpc.aio import EOF  # type: ignore[attr-defined]  # missing from grpc-stubs
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha.reflection_pb2 import ServerReflectionRequest as Request
from grpc_reflection.v1alpha.reflection_pb2 import ServerReflectionResponse as Response

from service.infrastructure.grpc.errors import ErrorReason, limit_status, malformed_request_status
from service.infrastructure.grpc.handlers import abort_quietly, request_id_of
from service.infrastructure.grpc.observer import MethodObserver, RpcObserver
from service.infrastructure.observability.logs import request_id_var
from service.infrastructure.observability.metrics import Metrics

V1ALPHA_SERVICE_NAME: str = v1alpha_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1_PACKAGE = "grpc.reflection.v1"
V1_FILE_NAME = "grpc/reflection/v1/reflection.proto"
METHOD_NAME = "ServerReflectionInfo"
_MAX_ECHOED_NAME = 256  # characters of a requested name repeated in an error message
# A question names a file, a symbol or an extension: a few hundred bytes at most. Larger requests are
# refused unparsed (before, a 4 MiB request was echoed back in a larger response, over the send limit).
MAX_REQUEST_BYTES = 4096
# Questions one stream may ask: grpcurl and grpcui ask a few dozen to learn the whole API.
MAX_REQUESTS_PER_STREAM = 256
POINT = "reflection"

# Who may ask, decided once per stream: None (allowed) or the status that refuses it (the token check and
# the authorization policy of the API, when they are on).
Guard = Callable[[tuple[tuple[str, str | bytes], ...], grpc.aio.ServicerContext[Any, Any], str], grpc.Status | None]


def _v1_file() -> FileDescriptor:
    """grpc/reflection/v1/reflection.proto, built from the v1alpha file in a private pool."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(v1alpha_pb2.DESCRIPTOR.serialized_pb)
    old_scope, new_scope = f".{proto.package}.", f".{V1_PACKAGE}."
    proto.name, proto.package = V1_FILE_NAME, V1_PACKAGE
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(old_scope, new_scope, 1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old_scope, new_scope, 1)
            method.output_type = method.output_type.replace(old_scope, new_scope, 1)
    pool = descriptor_pool.DescriptorPool()
    return cast(FileDescriptor, pool.AddSerializedFile(proto.SerializeToString()))  # type: ignore[no-untyped-call]


V1_FILE = _v1_file()
V1_SERVICE_NAME: str = V1_FILE.services_by_name["ServerReflection"].full_name
REFLECTION_SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)


class FileSet:
    """An immutable, indexed set of files closed under their imports."""

    def __init__(self, roots: Iterable[FileDescriptor]) -> None:
        self._files: dict[str, FileDescriptor] = {}
        for root in roots:
            self._collect(root)
        self.serialized: dict[str, bytes] = {name: file.serialized_pb for name, file in self._files.items()}
        self.closures: dict[str, tuple[bytes, ...]] = {name: self._closure(name) for name in self._files}
        self.symbols: dict[str, str] = {}  # fully-qualified name -> file name
        self.extensions: dict[tuple[str, int], str] = {}  # (extendee, number) -> file name
        self.messages: set[str] = set()
        for file in self._files.values():
            self._index(file)

    def _collect(self, file: FileDescriptor) -> None:
        known = self._files.get(file.name)
        if known is not None:
            if known.serialized_pb != file.serialized_pb:
                raise ValueError(f"two different files are named {file.name!r}")
            return
        self._files[file.name] = file
        for dependency in file.dependencies:
            self._collect(dependency)

    def _closure(self, name: str) -> tuple[bytes, ...]:
        order: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop()
            if current not in order:
                order.append(current)
                pending.extend(reversed([dependency.name for dependency in self._files[current].dependencies]))
        return tuple(self.serialized[file] for file in order)

    def _add(self, name: str, file: FileDescriptor) -> None:
        known = self.symbols.setdefault(name, file.name)
        if known != file.name:
            raise ValueError(f"{name} is declared in both {known} and {file.name}")

    def _add_extension(self, extension: FieldDescriptor, file: FileDescriptor) -> None:
        self._add(extension.full_name, file)
        extendee = extension.containing_type
        assert extendee is not None, extension.full_name  # an extension always extends a message
        self.extensions[(extendee.full_name, extension.number)] = file.name

    def _add_enum(self, enum: EnumDescriptor, file: FileDescriptor) -> None:
        self._add(enum.full_name, file)
        scope = enum.full_name.rpartition(".")[0]
        for value in enum.values:
            self._add(f"{scope}.{value.name}" if scope else value.name, file)
            self._add(f"{enum.full_name}.{value.name}", file)  # the name grpcurl shows

    def _add_message(self, message: Descriptor, file: FileDescriptor) -> None:
        self._add(message.full_name, file)
        self.messages.add(message.full_name)
        for field in message.fields:
            self._add(field.full_name, file)
        for oneof in message.oneofs:
            self._add(oneof.full_name, file)
        for extension in message.extensions:
            self._add_extension(extension, file)
        for nested in message.nested_types:
            self._add_message(nested, file)
        for enum in message.enum_types:
            self._add_enum(enum, file)

    def _index(self, file: FileDescriptor) -> None:
        for message in file.message_types_by_name.values():
            self._add_message(message, file)
        for enum in file.enum_types_by_name.values():
            self._add_enum(enum, file)
        for extension in file.extensions_by_name.values():
            self._add_extension(extension, file)
        for service in file.services_by_name.values():
            self._add(service.full_name, file)
            for method in service.methods:
                self._add(method.full_name, file)

    def extension_numbers(self, message: str) -> list[int]:
        return sorted(number for extendee, number in self.extensions if extendee == message)


def _not_found(request: Request, what: str, name: str) -> Response:
    shown = name if len(name) <= _MAX_ECHOED_NAME else name[:_MAX_ECHOED_NAME] + "..."
    return Response(
        valid_host=request.host,
        original_request=request,
        error_response=v1alpha_pb2.ErrorResponse(
            error_code=grpc.StatusCode.NOT_FOUND.value[0], error_message=f"{what} not found: {shown}"
        ),
    )


class ReflectionServicer:
    """Answers ServerReflectionInfo from a FileSet, for v1 and v1alpha alike."""

    def __init__(self, service_names: Iterable[str], files: FileSet) -> None:
        self.service_names = tuple(sorted(set(service_names)))
        self.files = files
        self._guard: Guard | None = None
        self._path = f"/{V1_SERVICE_NAME}/{METHOD_NAME}"
        self._watch: MethodObserver | None = None
        self._counter: Metrics | None = None
        for name in self.service_names:
            if name not in files.symbols:
                raise ValueError(f"no file of the reflection set declares the service {name}")

    def _files(self, request: Request, name: str | None, what: str, wanted: str) -> Response:
        """The file `name` with its transitive imports, or NOT_FOUND for `wanted`."""
        if name is None or name not in self.files.closures:
            return _not_found(request, what, wanted)
        closure = self.files.closures[name]
        files = v1alpha_pb2.FileDescriptorResponse(file_descriptor_proto=closure)
        return Response(valid_host=request.host, original_request=request, file_descriptor_response=files)

    def _extension_numbers(self, request: Request) -> Response:
        message = request.all_extension_numbers_of_type
        if message not in self.files.messages:
            return _not_found(request, "message", message)
        numbers = self.files.extension_numbers(message)
        found = v1alpha_pb2.ExtensionNumberResponse(base_type_name=message, extension_number=numbers)
        return Response(valid_host=request.host, original_request=request, all_extension_numbers_response=found)

    def answer(self, request: Request) -> Response:
        """The response to one request of the stream."""
        kind = request.WhichOneof("message_request")
        if kind == "file_by_filename":
            name = request.file_by_filename
            return self._files(request, name, "file", name)
        if kind == "file_containing_symbol":
            symbol = request.file_containing_symbol
            return self._files(request, self.files.symbols.get(symbol), "symbol", symbol)
        if kind == "file_containing_extension":
            extension = request.file_containing_extension
            key = (extension.containing_type, extension.extension_number)
            return self._files(request, self.files.extensions.get(key), "extension", f"{key[0]} {key[1]}")
        if kind == "all_extension_numbers_of_type":
            return self._extension_numbers(request)
        if kind == "list_services":
            listed = v1alpha_pb2.ListServiceResponse(service=[{"name": name} for name in self.service_names])
            return Response(valid_host=request.host, original_request=request, list_services_response=listed)
        invalid = v1alpha_pb2.ErrorResponse(
            error_code=grpc.StatusCode.INVALID_ARGUMENT.value[0], error_message="the request names no question"
        )
        return Response(valid_host=request.host, original_request=request, error_response=invalid)

    async def ServerReflectionInfo(  # noqa: N802 (the RPC's name)
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Answer each request of the stream, within the size and count caps, after the guard let the stream in."""
        started = time.perf_counter()
        metadata = tuple(context.invocation_metadata() or ())
        request_id = request_id_of(metadata)
        request_id_var.set(request_id)
        traced = self._watch.begin(metadata, request_id) if self._watch is not None else None
        code = grpc.StatusCode.OK
        try:
            refusal = self._guard(metadata, context, self._path) if self._guard is not None else None
            asked = 0
            while refusal is None:
                # context.read(), not `async for` over `requests`: an abandoned request generator keeps the
                # call alive until a garbage collection (measured: refused streams then filled the connection).
                raw = await context.read()
                if raw is EOF:
                    break
                asked += 1
                request = self._parse(cast(bytes, raw), asked)
                if not isinstance(request, Request):
                    refusal = request
                    break
                await context.write(self.answer(request).SerializeToString())
                if self._counter is not None:
                    self._counter.reflection_requests.inc()
            if refusal is not None:
                code = refusal.code
                await abort_quietly(context, refusal, request_id)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            if self._watch is not None:
                self._watch.end(context, code, time.perf_counter() - started, traced, request_id)

    def _parse(self, raw: bytes, asked: int) -> Request | grpc.Status:
        """The `asked`-th request of a stream, or the status refusing it (counted)."""
        if len(raw) > MAX_REQUEST_BYTES:
            reason, status = "REQUEST_TOO_LARGE", _too_large()
        elif asked > MAX_REQUESTS_PER_STREAM:
            reason, status = "STREAM_REQUEST_LIMIT_REACHED", _too_many()
        else:
            try:
                return Request.FromString(raw)
            except DecodeError:
                return malformed_request_status()
        if self._counter is not None:
            self._counter.overload_refused(POINT, reason)
        return status

    def serve_with(self, *, guard: Guard | None, observer: RpcObserver | None, path: str) -> None:
        """Refuse streams `guard` refuses; count and log each stream (as `path`) through `observer`."""
        self._guard = guard
        self._path = path
        if observer is not None:
            service, _, method = path[1:].partition("/")
            self._watch = MethodObserver(service, method, observer, grpc_type="bidi_stream")
            self._counter = observer.metrics

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        """The method table of either reflection service (the two share the wire format), over raw bytes."""
        return {METHOD_NAME: grpc.stream_stream_rpc_method_handler(self.ServerReflectionInfo)}


def _too_large() -> grpc.Status:
    return limit_status(
        ErrorReason.REQUEST_TOO_LARGE, f"a reflection request is at most {MAX_REQUEST_BYTES} bytes", MAX_REQUEST_BYTES
    )


def _too_many() -> grpc.Status:
    return limit_status(
        ErrorReason.STREAM_REQUEST_LIMIT_REACHED,
        f"a reflection stream answers at most {MAX_REQUESTS_PER_STREAM} requests; open a new one",
        MAX_REQUESTS_PER_STREAM,
    )


def reflection_servicer(
    service_names: Iterable[str],
    *,
    files: Iterable[FileDescriptor] = (),
    pool: descriptor_pool.DescriptorPool | None = None,
) -> ReflectionServicer:
    """A servicer describing `service_names` (looked up in `pool`, default: the default pool),
    the two reflection services themselves and `files`, with all their imports."""
    lookup = descriptor_pool.Default() if pool is None else pool  # type: ignore[no-untyped-call]
    names = tuple(service_names)
    roots: list[FileDescriptor] = [V1_FILE, v1alpha_pb2.DESCRIPTOR, *files]
    for name in names:
        try:
            roots.append(lookup.FindFileContainingSymbol(name))
        except KeyError:
            raise ValueError(f"no file of the descriptor pool declares the service {name}") from None
    return ReflectionServicer((*names, *REFLECTION_SERVICE_NAMES), FileSet(roots))


def enable_reflection(
    service_names: Iterable[str],
    server: grpc.aio.Server,
    *,
    files: Iterable[FileDescriptor] = (),
    pool: descriptor_pool.DescriptorPool | None = None,
    guard: Guard | None = None,
    observer: RpcObserver | None = None,
) -> ReflectionServicer:
    """Serve grpc.reflection.v1 and v1alpha on `server` (see `reflection_servicer`), behind `guard`
    (the API's authentication and policy), counted and logged through `observer`."""
    servicer = reflection_servicer(service_names, files=files, pool=pool)
    servicer.serve_with(guard=guard, observer=observer, path=f"/{V1_SERVICE_NAME}/{METHOD_NAME}")
    handlers = servicer.method_handlers()
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(name, handlers) for name in REFLECTION_SERVICE_NAMES)
    )
    return servicer
