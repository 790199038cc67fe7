"""Who may call what, and how much: the authorization policy and per-principal quotas, over tokens and mTLS.

Real servers on loopback, with the principals the service derives from the
tokens file (`<principal> <token>` lines) and from client certificates (URI
SAN, then DNS SANs, then the subject). Policies are gRPC's authorization-policy
JSON; tests/e2e/test_authz_conformance.py runs the same policies through
grpc-go's own engine.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from service.bootstrap import bootstrap
from service.domain.repository import TodoRepository
from service.infrastructure.config import ServerSettings, Settings
from service.infrastructure.config.credentials import TlsSettings
from service.infrastructure.grpc.server import RunningServer, start_server
from tests.support.certificates import CertificateAuthority
from tests.support.docs import block_after, page
from tests.support.fakes import GatedReads
from tests.support.process import ServiceProcess
from tests.support.rich_status import decode
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

READER_TOKEN = "reader-4c1f9e0b2a7d5e83"  # noqa: S105 (throwaway test tokens)
WRITER_TOKEN = "writer-7b2e0d9c4f1a6e35"  # noqa: S105
FLOOD_TOKEN = "flood-2d8c6b0e9a4f1c77"  # noqa: S105
BARE_TOKEN = "bare-5e3a7c1d0b9f2e64"  # noqa: S105
SERVICE = "/todo.v1.TodoService/"
# The example of docs/security.md, run as printed there.
READ_ONLY_POLICY = json.loads(block_after(page("docs/security.md"), "## Authorization policy", "json"))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class Served:
    def __init__(self, running: RunningServer, registry: CollectorRegistry) -> None:
        self.running = running
        self.registry = registry
        self.address = f"127.0.0.1:{running.port}"


async def serve(settings: Settings, repository: TodoRepository | None = None) -> Served:
    app = bootstrap(settings, repository=repository) if repository is not None else bootstrap(settings)
    running = await start_server(app.api, settings)
    await running.set_serving(True)
    return Served(running, app.telemetry.metrics.registry)


@pytest.fixture
def tokens(tmp_path: Path) -> str:
    path = tmp_path / "tokens"
    path.write_text(f"reader {READER_TOKEN}\nwriter {WRITER_TOKEN}\nflood {FLOOD_TOKEN}\n{BARE_TOKEN}\n")
    return str(path)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(READ_ONLY_POLICY))
    return path


@pytest.fixture
async def with_policy(tokens: str, policy_file: Path) -> AsyncIterator[Served]:
    settings = Settings.from_env(
        {
            "TODO_GRPC_ADDRESS": "127.0.0.1:0",
            "TODO_AUTH_TOKENS_FILE": tokens,
            "TODO_AUTHZ_POLICY_FILE": str(policy_file),
            "TODO_AUTHZ_POLICY_RELOAD_SECONDS": "0.05",
        }
    )
    served = await serve(settings)
    yield served
    await served.running.stop(0)


async def test_a_policy_over_tokens_lets_the_reader_read_only(with_policy: Served, json_log: io.StringIO) -> None:
    async with grpc.aio.insecure_channel(with_policy.address) as channel:
        stub = pb_grpc.TodoServiceStub(channel)
        created = (
            await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="x")), metadata=bearer(WRITER_TOKEN))
        ).todo
        read = await stub.GetTodo(pb.GetTodoRequest(id=created.id), metadata=bearer(READER_TOKEN))
        assert read.todo.id == created.id
        for call in (
            stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="y")), metadata=bearer(READER_TOKEN)),
            stub.DeleteTodo(pb.DeleteTodoRequest(id=created.id), metadata=bearer(READER_TOKEN)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            refused = decode(caught.value)
            assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED")
            assert refused.metadata["principal"] == "reader"
        with pytest.raises(grpc.aio.AioRpcError) as unnamed:  # a bare token's principal is named by no rule
            await stub.GetTodo(pb.GetTodoRequest(id=created.id), metadata=bearer(BARE_TOKEN))
        assert decode(unnamed.value).metadata["principal"].startswith("token:")
        # Health is never subject to the policy (nor to tokens).
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest(service="readiness"))).status == 1
    found = samples(with_policy.registry)
    assert found[("todo_authz_denied_total", (("principal", "reader"),))] == 2
    denied = {labels: count for (name, labels), count in found.items() if name == "todo_authz_denied_total"}
    assert sum(denied.values()) == 3  # the bare token's derived name is in the tokens file: its own label
    assert found[("todo_principal_rpcs_total", (("grpc_code", "OK"), ("principal", "writer")))] == 1
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if '"service.access"' in line]
    assert {(line["principal"], line["code"]) for line in lines} >= {("reader", "PERMISSION_DENIED"), ("writer", "OK")}
    assert READER_TOKEN not in json_log.getvalue()


async def test_a_bad_policy_at_reload_keeps_the_last_good_one_loudly(
    with_policy: Served, policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with grpc.aio.insecure_channel(with_policy.address) as channel:
        stub = pb_grpc.TodoServiceStub(channel)
        loaded_at = samples(with_policy.registry)[("todo_authz_policy_loaded_timestamp_seconds", ())]
        await asyncio.to_thread(policy_file.write_text, '{"name": "broken", "allow_rules": [')  # a broken update
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.ERROR, "service.authz"):
            created = await stub.CreateTodo(
                pb.CreateTodoRequest(todo=pb.Todo(content="still")), metadata=bearer(WRITER_TOKEN)
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:  # the last good policy still decides
                await stub.DeleteTodo(pb.DeleteTodoRequest(id=created.todo.id), metadata=bearer(READER_TOKEN))
        assert decode(caught.value).reason == "POLICY_DENIED"
        assert "keeping the policy 'todo-read-write'" in caplog.text
        found = samples(with_policy.registry)
        assert found[("todo_authz_policy_reload_failures_total", ())] == 1
        assert found[("todo_authz_policy_loaded_timestamp_seconds", ())] == loaded_at

        fixed = dict(READ_ONLY_POLICY, name="reader-may-delete", deny_rules=[])
        deletes = {"name": "reader-deletes", "source": {"principals": ["reader"]}}
        deletes["request"] = {"paths": [SERVICE + "DeleteTodo"]}
        fixed["allow_rules"] = [*READ_ONLY_POLICY["allow_rules"], deletes]
        await asyncio.to_thread(policy_file.write_text, json.dumps(fixed))
        await asyncio.sleep(0.1)
        await stub.DeleteTodo(pb.DeleteTodoRequest(id=created.todo.id), metadata=bearer(READER_TOKEN))
        assert samples(with_policy.registry)[("todo_authz_policy_loaded_timestamp_seconds", ())] > loaded_at


def test_a_bad_policy_at_start_is_a_configuration_error(tmp_path: Path) -> None:
    from service.infrastructure.config import ConfigError  # noqa: PLC0415

    path = tmp_path / "policy.json"
    for text, problem in (
        ('{"name": "p"}', 'needs "allow_rules"'),
        (
            '{"name": "p", "allow_rules": [{"name": "r", '
            '"request": {"headers": [{"key": "grpc-x", "values": ["1"]}]}}]}',
            "cannot be matched",
        ),
        ('{"name": "p", "allow_rules": [{"name": "r", "sauce": {}}]}', "unknown field(s) sauce"),
        ("not json", "is not valid JSON"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match="TODO_AUTHZ_POLICY_FILE") as caught:
            Settings.from_env({"TODO_AUTHZ_POLICY_FILE": str(path)})
        assert problem in str(caught.value)


@pytest.fixture
def mtls(tmp_path: Path, policy_file: Path) -> tuple[Settings, CertificateAuthority]:
    ca = CertificateAuthority("todo test CA")
    server = ca.issue_server("localhost")
    for name, data in (("server.pem", server.certificate), ("server.key", server.key), ("ca.pem", ca.certificate)):
        (tmp_path / name).write_bytes(data)
    settings = Settings(
        grpc_address="127.0.0.1:0",
        tls=TlsSettings(str(tmp_path / "server.pem"), str(tmp_path / "server.key"), str(tmp_path / "ca.pem")),
        authz_policy=Settings.from_env({"TODO_AUTHZ_POLICY_FILE": str(policy_file)}).authz_policy,
        server=ServerSettings(max_concurrent_rpcs_per_principal=2),
    )
    return settings, ca


def client_channel(ca: CertificateAuthority, port: int, common_name: str, **names: object) -> grpc.aio.Channel:
    pair = ca.issue_client(common_name, **names)  # type: ignore[arg-type]
    credentials = grpc.ssl_channel_credentials(ca.certificate, pair.key, pair.certificate)
    return grpc.aio.secure_channel(f"localhost:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


async def test_a_policy_over_mtls_matches_uri_sans_then_dns_sans_then_the_subject(
    mtls: tuple[Settings, CertificateAuthority],
) -> None:
    settings, ca = mtls
    served = await serve(settings)
    port = served.running.port
    try:
        reader = client_channel(ca, port, "someone", uris=("spiffe://example.org/ns/todo/sa/reader",), dns_names=())
        writer = client_channel(ca, port, "writer.todo.svc")  # a DNS SAN of the same name
        stranger = client_channel(ca, port, "stranger", dns_names=("stranger.svc",))
        async with reader, writer, stranger:
            created = await pb_grpc.TodoServiceStub(writer).CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="m")))
            got = await pb_grpc.TodoServiceStub(reader).GetTodo(pb.GetTodoRequest(id=created.todo.id))
            assert got.todo.content == "m"
            for channel, principal in ((reader, "spiffe://example.org/ns/todo/sa/reader"), (stranger, "stranger.svc")):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await pb_grpc.TodoServiceStub(channel).CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="n")))
                refused = decode(caught.value)
                assert (refused.reason, refused.metadata["principal"]) == ("POLICY_DENIED", principal)
    finally:
        await served.running.stop(0)


async def test_a_principal_over_its_share_is_refused_and_others_keep_theirs(
    mtls: tuple[Settings, CertificateAuthority],
) -> None:
    """Over mTLS: the writer's third concurrent call is refused (QUOTA_EXCEEDED); another writer is served."""
    settings, ca = mtls
    reads = GatedReads()
    served = await serve(settings, reads)
    port = served.running.port
    try:
        first = client_channel(ca, port, "writer.todo.svc")
        second = client_channel(ca, port, "other", dns_names=("writer",))  # another principal the policy allows
        async with first, second:
            stub = pb_grpc.TodoServiceStub(first)
            created = await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="q")))
            get = pb.GetTodoRequest(id=created.todo.id)
            held = [asyncio.ensure_future(stub.GetTodo(get, timeout=30)) for _ in range(2)]
            await reads.waiting(2)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTodo(get, timeout=5)
            refused = decode(caught.value)
            assert (refused.code, refused.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
            assert refused.metadata == {"principal": "writer.todo.svc", "quota": "max_concurrent_rpcs", "limit": "2"}
            details = caught.value.trailing_metadata()
            assert details is not None
            from google.rpc import error_details_pb2  # noqa: PLC0415
            from grpc_status import rpc_status  # noqa: PLC0415

            status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
            assert status is not None
            kinds = {detail.type_url.rsplit("/", 1)[1] for detail in status.details}
            assert kinds == {"google.rpc.ErrorInfo", "google.rpc.QuotaFailure", "google.rpc.RetryInfo"}
            failure = error_details_pb2.QuotaFailure()
            next(d for d in status.details if d.Is(error_details_pb2.QuotaFailure.DESCRIPTOR)).Unpack(failure)
            assert failure.violations[0].subject == "principal:writer.todo.svc"

            other = pb_grpc.TodoServiceStub(second)
            others = [asyncio.ensure_future(other.GetTodo(get, timeout=30)) for _ in range(2)]
            await reads.waiting(4)  # the other principal's calls reached the store: its share is its own
            reads.gate.set()
            for call in (*held, *others):
                assert (await call).todo.id == created.todo.id
        found = samples(served.registry)
        assert found[("todo_overload_refused_total", (("point", "quota"), ("reason", "QUOTA_EXCEEDED")))] == 1
    finally:
        reads.gate.set()
        await served.running.stop(0)


async def test_forty_refused_calls_leave_the_connection_usable_without_a_collection(
    with_policy: Served, no_garbage_collection: None
) -> None:
    async with grpc.aio.insecure_channel(with_policy.address) as channel:
        stub = pb_grpc.TodoServiceStub(channel)
        for _ in range(40):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="no")), metadata=bearer(READER_TOKEN))
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        created = await stub.CreateTodo(
            pb.CreateTodoRequest(todo=pb.Todo(content="yes")), metadata=bearer(WRITER_TOKEN)
        )
        assert created.todo.content == "yes"


async def goodput(address: str, token: str, workers: int, seconds: float, entry: str) -> tuple[int, int]:
    """(calls served, calls refused) by `workers` concurrent callers looping GetTodo for `seconds`."""
    served = refused = 0
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = pb_grpc.TodoServiceStub(channel)

        async def worker() -> None:
            nonlocal served, refused
            while time.monotonic() < deadline:
                try:
                    await stub.GetTodo(pb.GetTodoRequest(id=entry), metadata=bearer(token), timeout=5)
                    served += 1
                except grpc.aio.AioRpcError:
                    refused += 1
                    # A greedy caller that waits what RetryInfo says (0.1 s), not a busy loop: the quota shares the
                    # application slots, not CPU, and client and server share this process's CPU here.
                    await asyncio.sleep(0.1)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return served, refused


async def flood(address: str, token: str, seconds: float, entry: str) -> tuple[int, int]:
    """One principal on 4 connections x 8 calls (a compliant client's shape, but never resting)."""
    results = await asyncio.gather(*(goodput(address, token, 8, seconds, entry) for _ in range(4)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


@pytest.mark.process
@pytest.mark.parametrize("share", [8, 0], ids=["with-quota", "without-quota"])
def test_one_flooding_principal_leaves_another_its_goodput(tokens: str, share: int) -> None:
    """The real service (its own process), 16 application slots, reads of 50 ms: the writer keeps 4 calls
    going alone, then beside a flood of 32 calls by another principal (each caller on its own event loop).

    With a share of 8 per principal the writer keeps at least 0.9 of its goodput
    alone; without quotas (printed for the record, not asserted) the flood takes the slots.
    """
    env = {
        "TODO_AUTH_TOKENS_FILE": tokens,
        "TODO_MAX_CONCURRENT_RPCS": "16",
        "TODO_MAX_CONCURRENT_RPCS_PER_PRINCIPAL": str(share),
        "TODO_TEST_READ_SECONDS": "0.05",
        "TODO_ACCESS_LOG": "false",
    }
    with ServiceProcess(env, module="tests.support.slow_service") as service:
        address = service.wait_serving()
        with grpc.insecure_channel(address) as channel:
            entry = (
                pb_grpc.TodoServiceStub(channel)
                .CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="e")), metadata=bearer(WRITER_TOKEN), timeout=10)
                .todo.id
            )
        alone, _ = asyncio.run(goodput(address, WRITER_TOKEN, 4, 3.0, entry))
        with ThreadPoolExecutor(2) as pool:
            writer = pool.submit(asyncio.run, goodput(address, WRITER_TOKEN, 4, 3.0, entry))
            flooding = pool.submit(asyncio.run, flood(address, FLOOD_TOKEN, 3.0, entry))
            (beside, refused), (flooded, flood_refused) = writer.result(60), flooding.result(60)
        assert service.terminate() == 0, service.output
    ratio = beside / alone
    print(
        f"share {share or 'none'}: writer alone {alone} calls in 3 s, beside the flood {beside} ({ratio:.2f}), "
        f"{refused} refused; flood {flooded} served, {flood_refused} refused"
    )
    if share:
        assert refused == 0
        assert ratio >= 0.9
