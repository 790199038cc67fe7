"""Health and reflection cannot be abused: bounded requests, Watch caps per peer, refusals that leave no stream behind.

The findings of the security review (issue 21), each tried the way an
attacker would, on loopback:
- a Watch for a huge service name grew the server by about 14 MiB a stream
  (measured here as RSS of the real process);
- one client holding every Watch stream made the replica unhealthy for every
  client that health-checks it;
- reflection answered without a token, without a cap on requests per stream,
  echoing a 4 MiB request into a larger response.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from service.bootstrap import bootstrap
from service.infrastructure.config import ServerSettings, Settings
from service.infrastructure.grpc.server import RunningServer, start_server
from tests.support.metrics import scrape, value
from tests.support.process import ServiceProcess, rss_mib
from tests.support.rich_status import decode

SERVING = health_pb2.HealthCheckResponse.SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)
PER_PEER = 4
TOTAL = 10
server_registry: dict[int, CollectorRegistry] = {}  # the metrics of each test server, by port


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    """The real server on every address ([::]: IPv4 and IPv6 loopback are two peers), small Watch caps."""
    settings = Settings(
        grpc_address="[::]:0",
        server=ServerSettings(max_health_watches=TOTAL, max_health_watches_per_peer=PER_PEER),
    )
    app = bootstrap(settings)
    running = await start_server(app.api, settings)
    server_registry[running.port] = app.telemetry.metrics.registry
    await running.set_serving(True)
    yield running
    await running.stop(0)


async def test_one_client_cannot_hold_every_watch_stream_and_others_still_health_check(
    server: RunningServer,
) -> None:
    """A client on 127.0.0.1 tries to hold every stream; one on ::1 (another peer) still watches SERVING."""
    greedy = [grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=[OWN_CONNECTION]) for _ in range(3)]
    try:
        watches = [
            health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="readiness"))
            for channel in greedy
            for _ in range(4)  # fewer than the connection's stream limit
        ]
        held, refused = 0, []
        for watch in watches:
            try:
                assert (await watch.read()).status == SERVING
                held += 1
            except grpc.aio.AioRpcError as error:
                refused.append(decode(error))
        assert held == PER_PEER
        assert len(refused) == 12 - PER_PEER
        assert {(r.reason, r.metadata["scope"]) for r in refused} == {("WATCH_LIMIT_REACHED", "peer")}
        assert server.health.open_watches == PER_PEER

        async with grpc.aio.insecure_channel(f"[::1]:{server.port}", options=[OWN_CONNECTION]) as other:
            watch = health_pb2_grpc.HealthStub(other).Watch(health_pb2.HealthCheckRequest(service="readiness"))
            assert (await watch.read()).status == SERVING
            watch.cancel()
        for watch in watches:
            watch.cancel()
    finally:
        for channel in greedy:
            await channel.close(None)


async def test_unknown_names_are_not_kept_and_check_says_why(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert decode(caught.value).reason == "HEALTH_SERVICE_UNKNOWN"
        watch = health.Watch(health_pb2.HealthCheckRequest(service="x" * 900))
        assert (await watch.read()).status == SERVICE_UNKNOWN  # as grpc.health.v1 asks; the name is not kept
        watch.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as large:
            await health.Check(health_pb2.HealthCheckRequest(service="x" * 2000), timeout=5)
        refused = decode(large.value)
        assert (refused.reason, refused.metadata["limit"]) == ("REQUEST_TOO_LARGE", "1024")


async def test_forty_refused_health_calls_leave_the_connection_usable_without_a_collection(
    server: RunningServer, no_garbage_collection: None
) -> None:
    """Each refusal ends its call at once: no reference cycle holds a stream until a garbage collection."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        held = [health.Watch(health_pb2.HealthCheckRequest(service="liveness")) for _ in range(PER_PEER)]
        for watch in held:
            await watch.read()
        reasons = []
        for number in range(40):
            try:
                if number % 2:
                    await health.Check(health_pb2.HealthCheckRequest(service="y" * 4096), timeout=5)
                else:
                    await health.Watch(health_pb2.HealthCheckRequest(service="liveness")).read()
            except grpc.aio.AioRpcError as error:
                reasons.append(decode(error).reason)
        for watch in held:  # cancelled Watch streams end as well
            watch.cancel()
        for _ in range(40):
            cancelled = health.Watch(health_pb2.HealthCheckRequest(service="liveness"))
            await cancelled.read()
            cancelled.cancel()
        assert reasons == ["WATCH_LIMIT_REACHED", "REQUEST_TOO_LARGE"] * 20
        answer = await health.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=5)
        assert answer.status == SERVING


@pytest.mark.process
async def test_watches_for_huge_names_do_not_grow_the_server() -> None:
    """Before: each Watch for a 4 MiB name kept about 14 MiB while its stream was open."""
    streams = 16
    env = {"TODO_METRICS_ADDRESS": "127.0.0.1:0", "TODO_LOG_FORMAT": "console"}
    with ServiceProcess(env) as service:
        address = service.wait_serving()
        metrics = service.wait_for(r"metrics on (http://\S+/metrics)")[1]
        before = rss_mib(service.process.pid)
        name = "n" * (4 * 1024 * 1024 - 64)  # just under the 4 MiB receive limit
        channels = [grpc.aio.insecure_channel(address, options=[OWN_CONNECTION]) for _ in range(2)]
        try:
            watches, outcomes = [], []
            for number in range(streams):  # one after the other: what is held, not what is in transit
                health = health_pb2_grpc.HealthStub(channels[number % 2])
                watch = health.Watch(health_pb2.HealthCheckRequest(service=name))
                watches.append(watch)
                try:
                    await asyncio.wait_for(watch.read(), 20)
                    outcomes.append("held")
                except grpc.aio.AioRpcError as error:
                    outcomes.append(decode(error).reason)
            await asyncio.sleep(0.5)
            during = rss_mib(service.process.pid)
            open_now = value(await asyncio.to_thread(scrape, metrics), "todo_health_watch_streams")
            for watch in watches:
                watch.cancel()
        finally:
            for channel in channels:
                await channel.close(None)
        print(f"{streams} Watch streams for 4 MiB names: {outcomes}; server RSS {before:.0f} -> {during:.0f} MiB")
        assert outcomes == ["REQUEST_TOO_LARGE"] * streams
        assert open_now == 0
        # Before: about 14 MiB a stream (224 MiB here); now what remains is the allocator keeping freed buffers.
        assert during - before < 48, "huge health requests grew the server by more than 3 MiB a stream"
        assert service.terminate() == 0, service.output


def reflection_request(**fields: object) -> reflection_pb2.ServerReflectionRequest:
    return reflection_pb2.ServerReflectionRequest(**fields)


async def ask(channel: grpc.aio.Channel, *requests: reflection_pb2.ServerReflectionRequest) -> list[object]:
    """The answers to `requests` on one reflection stream (v1alpha), or the error that ended it."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter(requests))
    answers: list[object] = []
    try:
        async for answer in call:
            answers.append(answer)
    except grpc.aio.AioRpcError as error:
        answers.append(error)
    return answers


async def test_reflection_describes_the_error_details_the_service_sends(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for symbol in (
            "google.rpc.ErrorInfo",
            "google.rpc.BadRequest",
            "google.rpc.RetryInfo",
            "google.rpc.QuotaFailure",
        ):
            (answer,) = await ask(channel, reflection_request(file_containing_symbol=symbol))
            assert isinstance(answer, reflection_pb2.ServerReflectionResponse)
            assert answer.WhichOneof("message_response") == "file_descriptor_response", symbol
            first = descriptor_pb2.FileDescriptorProto.FromString(
                answer.file_descriptor_response.file_descriptor_proto[0]
            )
            assert first.name == "google/rpc/error_details.proto"


async def test_a_large_reflection_request_is_refused_unparsed_and_never_echoed(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        answers = await ask(channel, reflection_request(file_containing_symbol="x" * (1024 * 1024)))
        (refused,) = answers
        assert isinstance(refused, grpc.aio.AioRpcError)
        decoded = decode(refused)
        assert (decoded.reason, decoded.metadata["limit"]) == ("REQUEST_TOO_LARGE", "4096")
        assert len(refused.details() or "") < 200


async def test_a_reflection_stream_answers_a_bounded_number_of_questions(
    server: RunningServer, json_log: io.StringIO
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        questions = [reflection_request(list_services="")] * 300
        answers = await ask(channel, *questions)
        assert len(answers) == 257
        assert all(isinstance(answer, reflection_pb2.ServerReflectionResponse) for answer in answers[:256])
        last = answers[-1]
        assert isinstance(last, grpc.aio.AioRpcError)
        assert decode(last).reason == "STREAM_REQUEST_LIMIT_REACHED"
    reflection = "grpc.reflection.v1.ServerReflection"
    for _ in range(100):  # the handler counts the stream once it has ended, just after the client saw its status
        samples = server_metrics(server)
        if any(
            name == "grpc_server_handled_total" and ("grpc_service", reflection) in labels for name, labels in samples
        ):
            break
        await asyncio.sleep(0.05)
    assert samples[("todo_reflection_requests_total", ())] >= 256
    assert (
        samples[("todo_overload_refused_total", (("point", "reflection"), ("reason", "STREAM_REQUEST_LIMIT_REACHED")))]
        >= 1
    )
    handled = (
        "grpc_server_handled_total",
        (
            ("grpc_code", "RESOURCE_EXHAUSTED"),
            ("grpc_method", "ServerReflectionInfo"),
            ("grpc_service", reflection),
            ("grpc_type", "bidi_stream"),
        ),
    )
    assert samples[handled] >= 1
    access = [json.loads(line) for line in json_log.getvalue().splitlines() if '"service.access"' in line]
    assert {(line["method"], line["code"]) for line in access} >= {
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "RESOURCE_EXHAUSTED")
    }


async def test_forty_refused_reflection_streams_leave_the_connection_usable_without_a_collection(
    server: RunningServer, no_garbage_collection: None
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for _ in range(40):
            (refused,) = await ask(channel, reflection_request(file_by_filename="f" * 8192))
            assert isinstance(refused, grpc.aio.AioRpcError)
        (listed,) = await ask(channel, reflection_request(list_services=""))
        assert isinstance(listed, reflection_pb2.ServerReflectionResponse)
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=5)).status == SERVING


def server_metrics(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of the server's registry, keyed like tests.support.metrics.scrape."""
    registry = server_registry[server.port]
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_an_unknown_method_is_unimplemented_with_its_reason(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for path in ("/todo.v1.TodoService/Nope", "/todo.v1.TodoService/"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary(path, None, None)(b"", timeout=5)
            refused = decode(caught.value)
            assert (refused.code, refused.reason, refused.metadata["method"]) == (
                grpc.StatusCode.UNIMPLEMENTED,
                "METHOD_NOT_FOUND",
                path,
            )
