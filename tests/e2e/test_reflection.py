"""Server reflection with the real tools, over grpc.reflection.v1 and v1alpha.

The todo service, as a real process, is driven by ghz without `--proto`, by
grpcurl and by grpcui, all through reflection alone. A kitchen-sink contract
(tests/e2e/protos/kitchen/v1, compiled at test time with grpcio-tools) served
by an in-process server has every kind of symbol the protocol names; grpcurl
describes each (it speaks v1), and raw streams ask v1 and v1alpha the same
questions separately.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import select
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from service.bootstrap import bootstrap
from service.infrastructure.config import Settings
from service.infrastructure.grpc.reflection import V1_FILE, enable_reflection
from service.infrastructure.grpc.server import start_server
from tests.support.docs import block_after, page
from tests.support.process import grpcurl, installed_tool, running_service

KITCHEN_PROTOS = Path(__file__).parent / "protos"
KITCHEN_SERVICE = "kitchen.v1.KitchenService"
REFLECTION_SERVICES = {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
TODO_METHODS = ["AddTag", "CreateTodo", "DeleteTodo", "GetTodo", "ListTodos", "RemoveTag", "UpdateTodo"]
NOT_FOUND, INVALID_ARGUMENT = grpc.StatusCode.NOT_FOUND.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# The todo service, a real process.


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with running_service() as served:
        yield served


def ghz(address: str, method: str, data: dict[str, Any]) -> dict[str, Any]:
    """A short ghz run (no --proto: the method comes from reflection); its JSON report."""
    argv = [installed_tool("ghz", "TODO_GHZ"), "--insecure", "--call", f"todo.v1.TodoService.{method}"]
    argv += ["-d", json.dumps(data), "-n", "20", "-c", "2", "-O", "json", address]
    result = run(*argv)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.process
def test_ghz_finds_the_methods_through_reflection(address: str) -> None:
    created = ghz(address, "CreateTodo", {"todo": {"content": "load {{.RequestNumber}}"}})
    assert (created["count"], created["statusCodeDistribution"]) == (20, {"OK": 20})
    missing = ghz(address, "GetTodo", {"id": "no-such-entry"})
    assert missing["statusCodeDistribution"] == {"NotFound": 20}


@pytest.mark.process
def test_grpcurl_lists_and_describes_the_service(address: str) -> None:
    listed = grpcurl(address, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {"todo.v1.TodoService", "grpc.health.v1.Health", *REFLECTION_SERVICES}
    methods = grpcurl(address, "list", "todo.v1.TodoService")
    assert methods.stdout.split() == [f"todo.v1.TodoService.{name}" for name in TODO_METHODS]
    for symbol, expected in (
        (
            "todo.v1.TodoService.GetTodo",
            "returns ( .todo.v1.GetTodoResponse ) {\n  option idempotency_level = NO_SIDE_EFFECTS;",
        ),
        ("todo.v1.Todo.content", "string content = 2 [(.google.api.field_behavior) = REQUIRED];"),
        ("todo.v1.UpdateTodoRequest.update_mask", ".google.protobuf.FieldMask update_mask"),
        ("google.protobuf.Timestamp.seconds", "int64 seconds = 1;"),
        ("grpc.health.v1.HealthCheckResponse.SERVING", "SERVING = 1;"),
        ("todo.v1.ErrorReason", 'option (.todo.v1.error_domain) = "todo.v1";'),
        ("todo.v1.TODO_NOT_FOUND", "TODO_NOT_FOUND = 3 [(.todo.v1.status_code) = NOT_FOUND];"),
        ("todo.v1.status_code", "extend .google.protobuf.EnumValueOptions {"),
        ("google.api.field_behavior", "repeated .google.api.FieldBehavior field_behavior = 1052;"),
    ):
        described = grpcurl(address, "describe", symbol)
        assert described.returncode == 0, f"{symbol}: {described.stderr}"
        assert expected in described.stdout, described.stdout


DOCUMENTED_ADDRESS = "localhost:50051"


def documented_commands(address: str) -> dict[str, list[str]]:
    """The commands of docs/api.md's reflection block by program, the installed tool and `address` put in."""
    body = block_after(page("docs/api.md"), "## Health and reflection", "sh")
    commands = {}
    for line in body.splitlines():
        argv = shlex.split(line.split("  #", 1)[0])
        tool = installed_tool(argv[0], f"TODO_{argv[0].upper()}")
        commands[argv[0]] = [tool, *(address if arg == DOCUMENTED_ADDRESS else arg for arg in argv[1:])]
    return commands


@pytest.mark.process
def test_the_documented_commands_describe_and_load_the_service(address: str) -> None:
    commands = documented_commands(address)
    described = run(*commands["grpcurl"])
    assert described.returncode == 0, described.stderr
    assert "rpc GetTodo ( .todo.v1.GetTodoRequest ) returns ( .todo.v1.GetTodoResponse )" in described.stdout
    loaded = run(*commands["ghz"])
    assert loaded.returncode == 0, loaded.stderr
    assert re.search(r"Count:\s+200\b", loaded.stdout), loaded.stdout
    assert "[NotFound]   200 responses" in loaded.stdout  # no entry "buy-milk" in a fresh service


class Grpcui:
    """grpcui against `target` as docs/api.md runs it, its web UI on a free loopback port and no browser."""

    def __init__(self, target: str) -> None:
        documented = documented_commands(target)["grpcui"]
        argv = [*documented[:-1], "-bind", "127.0.0.1", "-port", "0", "-open-browser=false", documented[-1]]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output = ""

    def url(self, timeout: float = 30.0) -> str:
        """The UI's address, from the line grpcui prints once it has read the server's reflection."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if readable:
                line = self.process.stdout.readline()
                self.output += line
                match = re.search(r"available at (http://127\.0\.0\.1:\d+/)", line)
                if match:
                    return match[1]
                if not line:
                    break
        raise AssertionError(f"grpcui printed no address (exit {self.process.poll()}):\n{self.output}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a loopback http URL)
        body: bytes = response.read()
    return body.decode()


@pytest.mark.process
def test_grpcui_lists_the_seven_methods(address: str) -> None:
    ui = Grpcui(address)
    try:
        url = ui.url()
        html = fetch(url)
        listed = re.search(r'"todo\.v1\.TodoService": \[(.*?)\]', html, re.S)
        assert listed, html
        assert re.findall(r'"(\w+)"', listed[1]) == TODO_METHODS
        metadata = json.loads(fetch(f"{url}metadata?method=todo.v1.TodoService.GetTodo"))
        assert metadata["requestType"] == "todo.v1.GetTodoRequest"
        assert [field["name"] for field in metadata["messageTypes"]["todo.v1.GetTodoRequest"]] == ["id"]
    finally:
        ui.stop()


async def test_reflection_off_serves_neither_version() -> None:
    settings = Settings.from_env({"TODO_REFLECTION": "false", "TODO_GRPC_ADDRESS": "127.0.0.1:0"})
    app = bootstrap(settings)
    running = await start_server(app.api, settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            for version in ("v1", "v1alpha"):
                # A stream that asks nothing: a question still being sent when the server has answered
                # UNIMPLEMENTED makes grpc.aio's client report its failed send as INTERNAL now and then.
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await ask(channel, version, [])
                assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await running.stop(0)
        await app.close()


# The kitchen-sink contract, on an in-process server.


@pytest.fixture(scope="module")
def kitchen_pool(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    """kitchen/v1/kitchen.proto and its imports, compiled now, in a pool of their own."""
    out = tmp_path_factory.mktemp("kitchen") / "kitchen.binpb"
    compiled = run(
        sys.executable,
        "-m",
        "grpc_tools.protoc",  # adds the include path of the well-known types itself
        f"-I{KITCHEN_PROTOS}",
        f"--descriptor_set_out={out}",
        "--include_imports",
        "kitchen/v1/kitchen.proto",
    )
    assert compiled.returncode == 0, compiled.stderr
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:  # imports first
        pool.Add(file)  # type: ignore[no-untyped-call]
    return pool


@pytest.fixture
async def kitchen(kitchen_pool: descriptor_pool.DescriptorPool) -> AsyncIterator[str]:
    """The address of a server that serves reflection only, describing the kitchen service."""
    server = grpc.aio.server()
    enable_reflection((KITCHEN_SERVICE,), server, pool=kitchen_pool)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


# (symbol, what grpcurl says it is, a line of its description)
SYMBOLS = [
    ("kitchen.v1.KitchenService", "a service", "rpc Serve ( stream .kitchen.v1.CookRequest )"),
    ("kitchen.v1.KitchenService.Cook", "a method", "option (.kitchen.v1.heat) = 220;"),
    ("kitchen.v1.KitchenService.Serve", "a method", "returns ( stream .kitchen.v1.CookResponse );"),
    ("kitchen.v1.Dish", "a message", "map<string, .kitchen.v1.Ingredient> ingredients = 4;"),
    ("kitchen.v1.Dish.name", "a field", "optional string name = 1;"),
    ("kitchen.v1.Dish.serving", "a one-of", "bool room_temperature = 6;"),
    ("kitchen.v1.Dish.Garnish", "a message", "optional .kitchen.v1.Dish.Garnish.Size size = 1;"),
    ("kitchen.v1.Dish.IngredientsEntry", "the entry type for a map field", "ingredients = 4;"),
    ("kitchen.v1.Course", "an enum", "COURSE_DESSERT = 2;"),
    ("kitchen.v1.COURSE_DESSERT", "an enum value", "COURSE_DESSERT = 2;"),
    ("kitchen.v1.Course.COURSE_DESSERT", "an enum value", "COURSE_DESSERT = 2;"),
    ("kitchen.v1.Dish.Garnish.Size", "an enum", "SIZE_SPRINKLE = 1;"),
    ("kitchen.v1.Dish.Garnish.SIZE_SPRINKLE", "an enum value", "SIZE_SPRINKLE = 1;"),
    ("kitchen.v1.table_note", "an extension", "optional string table_note = 100;"),
    ("kitchen.v1.Dish.dish", "an extension", "optional .kitchen.v1.Dish dish = 101;"),
    ("kitchen.v1.heat", "an extension", "extend .google.protobuf.MethodOptions {"),
    ("kitchen.v1.Ingredient.best_before", "a field", ".google.protobuf.Timestamp best_before = 2;"),
    ("google.protobuf.MethodOptions.deprecated", "a field", "optional bool deprecated = 33"),
]


@pytest.mark.process
async def test_grpcurl_describes_every_symbol_kind(kitchen: str) -> None:
    listed = await asyncio.to_thread(grpcurl, kitchen, "list")
    assert set(listed.stdout.split()) == {KITCHEN_SERVICE, *REFLECTION_SERVICES}, listed.stderr
    for symbol, kind, line in SYMBOLS:
        described = await asyncio.to_thread(grpcurl, kitchen, "describe", symbol)
        assert described.returncode == 0, f"{symbol}: {described.stderr}"
        assert f" is {kind}:\n" in described.stdout, described.stdout
        assert line in described.stdout, described.stdout
    missing = await asyncio.to_thread(grpcurl, kitchen, "describe", "kitchen.v1.Dish.nope")
    assert missing.returncode != 0
    assert "not found" in missing.stderr.lower(), missing.stderr


def reflection_classes(version: str) -> tuple[Any, Any]:
    """Request and response classes of one protocol version (v1 from its own descriptor)."""
    file: FileDescriptor = V1_FILE if version == "v1" else v1alpha_pb2.DESCRIPTOR
    request = message_factory.GetMessageClass(file.message_types_by_name["ServerReflectionRequest"])
    response = message_factory.GetMessageClass(file.message_types_by_name["ServerReflectionResponse"])
    return request, response


async def ask(channel: grpc.aio.Channel, version: str, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ask `questions` (requests as JSON) on one ServerReflectionInfo stream; the answers as JSON."""
    request_class, response_class = reflection_classes(version)
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    requests = [json_format.ParseDict(question, request_class()) for question in questions]
    answers = [json_format.MessageToDict(response) async for response in call(iter(requests))]
    assert [answer.pop("originalRequest", {}) for answer in answers] == questions
    return answers


def file_names(answer: dict[str, Any]) -> list[str]:
    serialized = answer["fileDescriptorResponse"]["fileDescriptorProto"]
    return [descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(file)).name for file in serialized]


KITCHEN_FILES = [
    "kitchen/v1/kitchen.proto",
    "google/protobuf/descriptor.proto",
    "kitchen/v1/pantry.proto",
    "google/protobuf/timestamp.proto",
]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_each_protocol_version_answers_every_question(kitchen: str, version: str) -> None:
    questions: list[dict[str, Any]] = [
        {"listServices": "*"},
        {"fileContainingSymbol": "kitchen.v1.KitchenService.Cook"},
        {"fileContainingSymbol": "kitchen.v1.Dish.Garnish.SIZE_SPRINKLE"},
        {"fileByFilename": "kitchen/v1/pantry.proto"},
        {"fileContainingExtension": {"containingType": "kitchen.v1.Order", "extensionNumber": 101}},
        {"fileContainingExtension": {"containingType": "google.protobuf.MethodOptions", "extensionNumber": 50001}},
        {"allExtensionNumbersOfType": "kitchen.v1.Order"},
        {"allExtensionNumbersOfType": "google.protobuf.MethodOptions"},
        {"allExtensionNumbersOfType": "kitchen.v1.Dish"},
        # Loaded in this process, but not part of the served set:
        {"fileContainingSymbol": "grpc.health.v1.Health"},
        {"fileByFilename": "todo/v1/todo_service.proto"},
        {"fileContainingExtension": {"containingType": "kitchen.v1.Order", "extensionNumber": 150}},
        {"allExtensionNumbersOfType": "kitchen.v1.Nope"},
        {"host": "kitchen"},
    ]
    async with grpc.aio.insecure_channel(kitchen) as channel:
        answers = await ask(channel, version, questions)
    services = answers[0]["listServicesResponse"]["service"]
    assert [service["name"] for service in services] == sorted({KITCHEN_SERVICE, *REFLECTION_SERVICES})
    assert file_names(answers[1]) == KITCHEN_FILES
    assert file_names(answers[2]) == KITCHEN_FILES
    assert file_names(answers[3]) == ["kitchen/v1/pantry.proto", "google/protobuf/timestamp.proto"]
    assert file_names(answers[4]) == KITCHEN_FILES
    assert file_names(answers[5]) == KITCHEN_FILES
    assert answers[6]["allExtensionNumbersResponse"] == {
        "baseTypeName": "kitchen.v1.Order",
        "extensionNumber": [100, 101],
    }
    assert answers[7]["allExtensionNumbersResponse"]["extensionNumber"] == [50001]
    assert answers[8]["allExtensionNumbersResponse"] == {"baseTypeName": "kitchen.v1.Dish"}  # none
    for answer in answers[9:13]:
        assert answer["errorResponse"]["errorCode"] == NOT_FOUND, answer
    assert answers[9]["errorResponse"]["errorMessage"] == "symbol not found: grpc.health.v1.Health"
    assert answers[13] == {
        "validHost": "kitchen",
        "errorResponse": {"errorCode": INVALID_ARGUMENT, "errorMessage": "the request names no question"},
    }


def resolve_with_the_python_client(address: str) -> tuple[str, str, list[str]]:
    """grpcio-reflection's own client (v1alpha): a method's types and a nested enum's values."""
    with grpc.insecure_channel(address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindMethodByName("kitchen.v1.KitchenService.Cook")  # type: ignore[no-untyped-call]
        enum = pool.FindEnumTypeByName("kitchen.v1.Dish.Garnish.Size")  # type: ignore[no-untyped-call]
        return method.input_type.full_name, method.output_type.full_name, [value.name for value in enum.values]


async def test_grpcio_reflection_client_resolves_a_method_over_v1alpha(kitchen: str) -> None:
    resolved = await asyncio.to_thread(resolve_with_the_python_client, kitchen)
    assert resolved == ("kitchen.v1.CookRequest", "kitchen.v1.CookResponse", ["SIZE_UNSPECIFIED", "SIZE_SPRINKLE"])
