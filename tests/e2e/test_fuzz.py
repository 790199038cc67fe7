"""A fuzz of every method of todo.v1.TodoService with random and mutated request bytes.

The methods and their request types come from the service descriptor (no
method is listed by hand). Each example sends raw bytes over a real channel
with identity serializers: random bytes, or a valid request (built from the
request type's descriptor, with ids, tags and a page token the server really
issued) that is then mutated at the wire level: bit flips, truncation,
spliced bytes, a field's number or wire type changed, a length prefix made
huge, invalid UTF-8 in a string field, and groups nested deeper than any
parser's recursion limit.

Checked for every call: the status is never INTERNAL or UNKNOWN; every
failure carries a reason of the contract (`tests.e2e.rich_status.decode`);
MALFORMED_REQUEST comes back exactly when the bytes are not a valid message of
the request type (as protobuf parses them here); an OK response parses as the
response type. Afterwards the server still answers its health check SERVING
and serves a plain CreateTodo and GetTodo.

Bounded for `make check` (derandomized, no example database): 600 examples on
the in-memory store and 150 on MongoDB through PyMongo take 3.0 s and 0.8 s
on an idle 2-core machine (about 10 s together with the cores shared). Lists
hold at most 5 elements and strings 20 characters: the bounds on huge
requests have tests of their own. Page tokens are only replayed or mutated
here, never forged with the server's secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.infrastructure.grpc.server import LIVENESS, RunningServer
from tests.support.rich_status import decode
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["TodoService"]
METHODS: list[MethodDescriptor] = list(SERVICE.methods)
CALL_TIMEOUT = 20.0
# Codes the service itself answers with for a request it can read or not;
# everything else (INTERNAL and UNKNOWN above all) fails the test.
EXPECTED_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED,
}
STRINGS = ["", "a", "home", "Work", " x ", "content", "tags", "done", "*", "id", "etag", "r1", "é", "-", "a" * 70]
NESTING_DEPTHS = [2, 99, 100, 101, 200, 1000, 5000]
HUGE_LENGTHS = [2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**64 - 1, 1 << 20]
INVALID_UTF8 = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\xe2\x82", b"\x80abc"]


def request_class(method: MethodDescriptor) -> type[Message]:
    return message_factory.GetMessageClass(method.input_type)


def response_class(method: MethodDescriptor) -> type[Message]:
    return message_factory.GetMessageClass(method.output_type)


# -- the wire format, as far as the mutations need it ------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7


@dataclass(frozen=True)
class WireField:
    """One top-level field of a serialized message: where its tag and value lie."""

    start: int
    value_start: int
    end: int
    number: int
    wire_type: int


def wire_fields(raw: bytes) -> list[WireField]:
    """The top-level fields of bytes that protobuf serialized (no groups)."""
    fields: list[WireField] = []
    position = 0
    while position < len(raw):
        start = position
        tag, position = read_varint(raw, position)
        number, wire_type = tag >> 3, tag & 7
        value_start = position
        if wire_type == 0:
            _, position = read_varint(raw, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 2:
            length, position = read_varint(raw, position)
            value_start = position
            position += length
        elif wire_type == 5:
            position += 4
        else:
            raise AssertionError(f"unexpected wire type {wire_type} in serialized bytes")
        fields.append(WireField(start, value_start, position, number, wire_type))
    return fields


def string_field_numbers(descriptor: Descriptor) -> list[int]:
    return [field.number for field in descriptor.fields if field.type == FieldDescriptor.TYPE_STRING]


# -- strategies --------------------------------------------------------------


@dataclass
class Seeds:
    """Values the server knows, so that valid requests reach past validation."""

    strings: list[str]


FD = FieldDescriptor
NUMBERS: dict[int, st.SearchStrategy[object]] = {
    **dict.fromkeys(
        (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32),
        st.one_of(st.sampled_from([0, 1, 2, 500, 501, -1]), st.integers(-(2**31), 2**31 - 1)),
    ),
    **dict.fromkeys((FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64), st.integers(-(2**63), 2**63 - 1)),
    **dict.fromkeys((FD.TYPE_UINT32, FD.TYPE_FIXED32), st.integers(0, 2**32 - 1)),
    **dict.fromkeys((FD.TYPE_UINT64, FD.TYPE_FIXED64), st.integers(0, 2**64 - 1)),
    **dict.fromkeys((FD.TYPE_DOUBLE, FD.TYPE_FLOAT), st.floats(allow_nan=False, width=32)),
    FD.TYPE_BOOL: st.booleans(),
    FD.TYPE_BYTES: st.binary(max_size=20),
}


def scalar(field: FieldDescriptor, seeds: Seeds) -> st.SearchStrategy[object]:
    if field.type == FD.TYPE_STRING:
        return st.one_of(st.sampled_from(seeds.strings), st.text(max_size=20))
    if field.type == FD.TYPE_ENUM:
        return st.sampled_from([value.number for value in field.enum_type.values])
    strategy = NUMBERS.get(field.type)
    assert strategy is not None, f"no strategy for {field.full_name} (type {field.type})"
    return strategy


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, seeds: Seeds, depth: int = 0) -> Message:
    """A message of `descriptor`'s type with a random subset of its fields set."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            nested = messages(field.message_type, seeds, depth + 1)
            if field.label == FieldDescriptor.LABEL_REPEATED:
                getattr(message, field.name).extend(draw(st.lists(nested, max_size=3)))
            else:
                getattr(message, field.name).CopyFrom(draw(nested))
        elif field.label == FieldDescriptor.LABEL_REPEATED:
            getattr(message, field.name).extend(draw(st.lists(scalar(field, seeds), max_size=5)))
        else:
            setattr(message, field.name, draw(scalar(field, seeds)))
    return message


Mutation = Callable[[st.DrawFn, bytes, Descriptor], bytes]


def parsed_fields(raw: bytes) -> list[WireField]:
    try:
        return wire_fields(raw)
    except (AssertionError, IndexError):
        return []  # already mutated beyond parsing: the byte-level mutations still apply


def bit_flip(draw: st.DrawFn, raw: bytes, descriptor: Descriptor) -> bytes:
    if not raw:
        return raw
    index = draw(st.integers(0, len(raw) - 1))
    return raw[:index] + bytes([raw[index] ^ (1 << draw(st.integers(0, 7)))]) + raw[index + 1 :]


def truncate(draw: st.DrawFn, raw: bytes, descriptor: Descriptor) -> bytes:
    return raw[: draw(st.integers(0, len(raw) - 1))] if raw else raw


def splice(draw: st.DrawFn, raw: bytes, descriptor: Descriptor) -> bytes:
    index = draw(st.integers(0, len(raw)))
    return raw[:index] + draw(st.binary(min_size=1, max_size=16)) + raw[index:]


def retag(draw: st.DrawFn, raw: bytes, descriptor: Descriptor) -> bytes:
    """Give one field another field number or another wire type."""
    fields = parsed_fields(raw)
    if not fields:
        return raw
    field = draw(st.sampled_from(fields))
    number, wire_type = field.number, field.wire_type
    if draw(st.booleans()):
        number = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 19000, 19999, 2**29 - 1, 2**29]))
    else:
        wire_type = draw(st.integers(0, 7))
    old_tag = varint(field.number << 3 | field.wire_type)
    return raw[: field.start] + varint(number << 3 | wire_type) + raw[field.start + len(old_tag) :]


def bad_length(draw: st.DrawFn, raw: bytes, descriptor: Descriptor) -> bytes:
    """A length prefix far beyond the message, or one byte beyond it."""
    fields = [field for field in parsed_fields(raw) if field.wire_type == 2]
    if not fields:
        return raw
    field = draw(st.sampled_from(fields))
    payload = raw[field.value_start : field.end]
    length = draw(st.sampled_from([*HUGE_LENGTHS, len(payload) + 1]))
    return raw[: field.start] + varint(field.number << 3 | 2) + varint(length) + payload + raw[field.end :]


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def invalid_utf8(draw: st.DrawFn, raw: bytes, descriptor: Descriptor) -> bytes:
    """Invalid UTF-8 in a string field of the request, or of a message field in it."""
    nested = [field for field in descriptor.fields if field.type == FD.TYPE_MESSAGE]
    payload = draw(st.sampled_from(INVALID_UTF8))
    inside: bool = draw(st.booleans())
    if nested and inside:
        field = draw(st.sampled_from(nested))
        numbers = string_field_numbers(field.message_type)
        if numbers:
            return raw + length_delimited(field.number, length_delimited(draw(st.sampled_from(numbers)), payload))
    numbers = string_field_numbers(descriptor)
    return raw + length_delimited(draw(st.sampled_from(numbers)), payload) if numbers else raw


def deep_nesting(draw: st.DrawFn, raw: bytes, descriptor: Descriptor) -> bytes:
    """Groups nested past any recursion limit, or unknown length-delimited fields nested in a message field."""
    depth = draw(st.sampled_from(NESTING_DEPTHS))
    nested = [field for field in descriptor.fields if field.type == FD.TYPE_MESSAGE]
    inside: bool = draw(st.booleans())
    if nested and inside:
        inner = b""
        for _ in range(min(depth, 200)):
            inner = length_delimited(15, inner)
        return raw + length_delimited(draw(st.sampled_from(nested)).number, inner)
    number = draw(st.sampled_from([15, 1]))
    return raw + varint(number << 3 | 3) * depth + varint(number << 3 | 4) * depth


MUTATIONS: list[Mutation] = [bit_flip, truncate, splice, retag, bad_length, invalid_utf8, deep_nesting]


@st.composite
def mutated(draw: st.DrawFn, method: MethodDescriptor, seeds: Seeds) -> bytes:
    """A valid request of `method`, serialized, then changed by one or two mutations."""
    raw = draw(messages(method.input_type, seeds)).SerializeToString()
    for _ in range(draw(st.integers(1, 2))):
        raw = draw(st.sampled_from(MUTATIONS))(draw, raw, method.input_type)
    return raw


def valid(method: MethodDescriptor, seeds: Seeds) -> st.SearchStrategy[bytes]:
    return messages(method.input_type, seeds).map(lambda message: message.SerializeToString())


def requests(seeds: Seeds) -> st.SearchStrategy[tuple[MethodDescriptor, bytes]]:
    """(method, request bytes): random bytes, a mutated valid request, or a valid one."""
    return st.sampled_from(METHODS).flatmap(
        lambda method: st.tuples(
            st.just(method),
            st.one_of(st.binary(max_size=128), mutated(method, seeds), valid(method, seeds)),
        )
    )


# -- the test ------------------------------------------------------------------


@dataclass
class Target:
    loop: asyncio.AbstractEventLoop
    channel: grpc.aio.Channel

    def call(self, method: MethodDescriptor, raw: bytes) -> bytes | grpc.aio.AioRpcError:
        path = f"/{SERVICE.full_name}/{method.name}"
        rpc: Callable[..., grpc.aio.UnaryUnaryCall[bytes, bytes]] = self.channel.unary_unary(
            path, request_serializer=None, response_deserializer=None
        )

        async def attempt() -> bytes | grpc.aio.AioRpcError:
            try:
                return await rpc(raw, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as error:
                return error

        return asyncio.run_coroutine_threadsafe(attempt(), self.loop).result(timeout=CALL_TIMEOUT * 2)


def check(target: Target, method: MethodDescriptor, raw: bytes) -> None:
    outcome = target.call(method, raw)
    where = f"{method.name} with request bytes {raw.hex()}"
    try:
        request_class(method).FromString(raw)
        parses = True
    except DecodeError:
        parses = False
    if isinstance(outcome, bytes):
        assert parses, f"OK for bytes that do not parse: {where}"
        response_class(method).FromString(outcome)
        return
    code = outcome.code()
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), f"{code.name} for {where}: {outcome}"
    assert code in EXPECTED_CODES, f"{code.name} for {where}: {outcome.details()}"
    reason = decode(outcome).reason
    assert (reason == "MALFORMED_REQUEST") == (not parses), f"{reason} for {where}"


async def seed(channel: grpc.aio.Channel) -> Seeds:
    """A few entries and a real page token: their ids, etags and token join the strings drawn."""
    stub: pb_grpc.TodoServiceAsyncStub = pb_grpc.TodoServiceStub(channel)
    strings = list(STRINGS)
    for index in range(3):
        response = await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=f"seed {index}", tags=["home"])))
        strings += [response.todo.id, response.todo.etag]
    page = await stub.ListTodos(pb.ListTodosRequest(page_size=1))
    return Seeds(strings=[*strings, page.next_page_token])


async def still_healthy(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", LIVENESS):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, name
    stub: pb_grpc.TodoServiceAsyncStub = pb_grpc.TodoServiceStub(channel)
    created = await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="after the fuzz")), timeout=5)
    fetched = await stub.GetTodo(pb.GetTodoRequest(id=created.todo.id), timeout=5)
    assert fetched.todo == created.todo


@pytest.mark.parametrize(
    ("server", "examples"),
    # The in-memory store gets the long run; one MongoDB driver a shorter one
    # (the request parsing is the same, the store paths differ).
    [("memory", 600), ("mongo-pymongo", 150)],
    indirect=["server"],
)
async def test_no_request_bytes_make_the_service_fail_or_fall_over(server: RunningServer, examples: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        seeds = await seed(channel)
        target = Target(asyncio.get_running_loop(), channel)

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(requests(seeds))
        def fuzz(case: tuple[MethodDescriptor, bytes]) -> None:
            check(target, *case)

        await asyncio.to_thread(fuzz)
        await still_healthy(channel)
