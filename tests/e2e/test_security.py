"""TLS, mTLS and bearer tokens on the server side, through the real server and the real grpcurl."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import shlex
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.bootstrap import bootstrap
from service.infrastructure.config import Settings, TlsSettings
from service.infrastructure.grpc.server import RunningServer, start_server
from tests.support import REPO
from tests.support.certificates import CertificateAuthority
from tests.support.docs import blocks, page
from tests.support.process import ServiceProcess, grpcurl_binary
from tests.support.rich_status import decode
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

TOKEN = "tok-3f9a1c2b7d-e41c0a"  # noqa: S105 (a throwaway test token)
HASHED_TOKEN = "second-token-8e2d"  # noqa: S105


@dataclass
class Pki:
    directory: Path
    ca: CertificateAuthority
    other_ca: CertificateAuthority

    def write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, CertificateAuthority("todo test CA"), CertificateAuthority("someone else's CA"))


async def started(settings: Settings) -> RunningServer:
    settings = dataclasses.replace(settings, grpc_address="127.0.0.1:0")
    running = await start_server(bootstrap(settings).api, settings)
    await running.set_serving(True)
    return running


def tls_settings(pki: Pki, mutual: bool) -> TlsSettings:
    server = pki.ca.issue_server("localhost")
    return TlsSettings(
        cert_file=pki.write("server.pem", server.certificate),
        key_file=pki.write("server.key", server.key),
        client_ca_file=pki.write("ca.pem", pki.ca.certificate) if mutual else None,
    )


async def create_over(channel: grpc.aio.Channel) -> pb.Todo:
    stub = pb_grpc.TodoServiceStub(channel)
    return (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="secure")), timeout=5)).todo


async def test_tls_client_succeeds_and_plaintext_client_fails(pki: Pki) -> None:
    running = await started(Settings(tls=tls_settings(pki, mutual=False)))
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.certificate)
        async with grpc.aio.secure_channel(f"localhost:{running.port}", credentials) as channel:
            assert (await create_over(channel)).content == "secure"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await create_over(plaintext)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


async def test_mtls_requires_a_client_certificate_from_the_configured_ca(pki: Pki) -> None:
    running = await started(Settings(tls=tls_settings(pki, mutual=True)))
    target = f"localhost:{running.port}"
    good = pki.ca.issue_client("caller")
    foreign = pki.other_ca.issue_client("intruder")
    try:
        with_cert = grpc.ssl_channel_credentials(pki.ca.certificate, good.key, good.certificate)
        async with grpc.aio.secure_channel(target, with_cert) as channel:
            assert (await create_over(channel)).content == "secure"
        for credentials in (
            grpc.ssl_channel_credentials(pki.ca.certificate),  # no client certificate
            grpc.ssl_channel_credentials(pki.ca.certificate, foreign.key, foreign.certificate),
        ):
            async with grpc.aio.secure_channel(target, credentials) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await create_over(channel)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


@pytest.fixture
def tokens_file(tmp_path: Path) -> str:
    path = tmp_path / "tokens"
    digest = hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()
    path.write_text(f"# service tokens\n{TOKEN}\n\nsha256:{digest}\n")
    return str(path)


@pytest.fixture
async def authenticated(tokens_file: str) -> AsyncIterator[grpc.aio.Channel]:
    settings = Settings.from_env({"TODO_AUTH_TOKENS_FILE": tokens_file, "TODO_GRPC_ADDRESS": "127.0.0.1:0"})
    running = await started(settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield channel
    await running.stop(0)


async def test_tokens_guard_the_api_but_not_health(authenticated: grpc.aio.Channel, json_log: io.StringIO) -> None:
    stub = pb_grpc.TodoServiceStub(authenticated)
    request = pb.CreateTodoRequest(todo=pb.Todo(content="guarded"))
    refused = (
        ((), "BEARER_TOKEN_MISSING"),
        ((("authorization", "Bearer wrong-token"),), "BEARER_TOKEN_INVALID"),
        ((("authorization", f"Basic {TOKEN}"),), "BEARER_TOKEN_INVALID"),
    )
    for metadata, reason in refused:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateTodo(request, metadata=metadata)
        error = decode(caught.value)
        assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)
        assert TOKEN not in error.message
    for token in (TOKEN, HASHED_TOKEN):
        created = await stub.CreateTodo(request, metadata=(("authorization", f"Bearer {token}"),))
        assert created.todo.content == "guarded"
    health = health_pb2_grpc.HealthStub(authenticated)
    assert (await health.Check(health_pb2.HealthCheckRequest(service="readiness"))).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    assert TOKEN not in json_log.getvalue()
    assert HASHED_TOKEN not in json_log.getvalue()
    assert "service.access" in json_log.getvalue()


def test_reflection_is_off_by_default_with_tokens_and_can_be_turned_on(tokens_file: str) -> None:
    assert Settings.from_env({}).reflection is True
    assert Settings.from_env({"TODO_AUTH_TOKENS_FILE": tokens_file}).reflection is False
    both = {"TODO_AUTH_TOKENS_FILE": tokens_file, "TODO_REFLECTION": "true"}
    assert Settings.from_env(both).reflection is True


async def test_reflection_turned_on_with_tokens_needs_a_token(tokens_file: str) -> None:
    """Before: reflection turned on with tokens answered anyone who could connect."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: PLC0415

    settings = Settings.from_env({"TODO_AUTH_TOKENS_FILE": tokens_file, "TODO_REFLECTION": "true"})
    running = await started(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            question = reflection_pb2.ServerReflectionRequest(list_services="")
            for metadata, reason in (
                ((), "BEARER_TOKEN_MISSING"),
                ((("authorization", "Bearer nope"),), "BEARER_TOKEN_INVALID"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    async for _ in stub.ServerReflectionInfo(iter([question]), metadata=metadata):
                        pass
                assert decode(caught.value).reason == reason
            answers = [
                answer
                async for answer in stub.ServerReflectionInfo(
                    iter([question]), metadata=(("authorization", f"Bearer {TOKEN}"),)
                )
            ]
            assert "todo.v1.TodoService" in {service.name for service in answers[0].list_services_response.service}
    finally:
        await running.stop(0)


def run_grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    """grpcurl from the repository's root, as docs/security.md runs it."""
    return subprocess.run([grpcurl_binary(), *args], capture_output=True, text=True, timeout=30, check=False, cwd=REPO)


def documented_command(containing: str) -> str:
    """The `sh` code block of docs/security.md that holds `containing`, as one line."""
    [block] = [
        block.body for block in blocks(page("docs/security.md")) if block.lang == "sh" and containing in block.body
    ]
    return block.replace("\\\n", " ").strip()


@pytest.mark.process
def test_grpcurl_with_mtls_and_a_token(pki: Pki, tokens_file: str, health_probe: Path) -> None:
    tls = tls_settings(pki, mutual=True)
    client = pki.ca.issue_client("grpcurl")
    env = {
        "TODO_TLS_CERT_FILE": tls.cert_file,
        "TODO_TLS_KEY_FILE": tls.key_file,
        "TODO_TLS_CLIENT_CA_FILE": str(tls.client_ca_file),
        "TODO_AUTH_TOKENS_FILE": tokens_file,  # and so reflection stays off
    }
    cert, key = pki.write("client.pem", client.certificate), pki.write("client.key", client.key)
    ca = pki.write("ca-for-grpcurl.pem", pki.ca.certificate)
    with ServiceProcess(env) as service:
        port = service.wait_serving().rsplit(":", 1)[1]
        address = f"localhost:{port}"
        proto_args = ["-import-path", "protos", "-import-path", "third_party/googleapis"]
        proto_args += ["-proto", "todo/v1/todo_service.proto"]
        tls_args = ["-cacert", ca, "-cert", cert, "-key", key, *proto_args]
        data = '{"todo": {"content": "over mTLS"}}'
        printed = documented_command('-d \'{"todo": {"content": "over mTLS"}}\'')
        for placeholder, value in (
            ("<token>", TOKEN),
            ("localhost:50051", address),
            ("ca.pem", ca),
            ("client.pem", cert),
            ("client.key", key),
        ):
            assert placeholder in printed
            printed = printed.replace(placeholder, value)
        argv = shlex.split(printed)
        assert argv[0] == "grpcurl"
        ok = run_grpcurl(*argv[1:])
        assert ok.returncode == 0, ok.stderr
        assert '"content": "over mTLS"' in ok.stdout
        no_token = run_grpcurl(*tls_args, "-d", data, address, "todo.v1.TodoService/CreateTodo")
        assert "Code: Unauthenticated" in no_token.stderr
        no_cert = run_grpcurl("-cacert", pki.write("ca2.pem", pki.ca.certificate), address, "list")
        assert no_cert.returncode != 0
        plaintext = run_grpcurl("-plaintext", f"127.0.0.1:{port}", "list")
        assert plaintext.returncode != 0
        # Health needs no token (grpc-health-probe: grpcurl would need health.proto, reflection being off).
        probe_tls = [f"-tls-ca-cert={ca}", f"-tls-client-cert={cert}", f"-tls-client-key={key}"]
        health = subprocess.run(
            [str(health_probe), f"-addr={address}", "-service=liveness", "-tls", *probe_tls, "-rpc-timeout=5s"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert health.returncode == 0, health.stderr
        assert service.terminate() == 0
    assert TOKEN not in service.output


@pytest.mark.parametrize(
    "method", ["/todo.v1.TodoService/Nope", "/todo.v1.TodoService/", "/todo.v1.TodoService/GetTodoX"]
)
async def test_an_unknown_method_of_the_service_is_unauthenticated_without_a_token(
    authenticated: grpc.aio.Channel, method: str
) -> None:
    call = authenticated.unary_unary(method, None, None)
    refusals = (((), "BEARER_TOKEN_MISSING"), ((("authorization", "Bearer nope"),), "BEARER_TOKEN_INVALID"))
    for metadata, reason in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"", metadata=metadata, timeout=5)
        error = decode(caught.value)
        assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    with pytest.raises(grpc.aio.AioRpcError) as known:
        await call(b"", metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=5)
    assert known.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # Not the service's path: plain UNIMPLEMENTED.
    other = authenticated.unary_unary("/todo.v1.OtherService/Nope", None, None)
    with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
        await other(b"", timeout=5)
    assert elsewhere.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_removed_token_is_refused_within_the_reload_interval_and_an_emptied_file_refuses_all(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\n{HASHED_TOKEN}\n")
    interval = 0.5
    settings = Settings.from_env({"TODO_AUTH_TOKENS_FILE": str(path), "TODO_AUTH_TOKENS_RELOAD_SECONDS": str(interval)})
    running = await started(settings)
    request = pb.CreateTodoRequest(todo=pb.Todo(content="revocable"))

    async def outcome(stub: pb_grpc.TodoServiceAsyncStub, token: str) -> grpc.StatusCode:
        try:
            await stub.CreateTodo(request, metadata=(("authorization", f"Bearer {token}"),), timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    async def refused_after(stub: pb_grpc.TodoServiceAsyncStub, token: str) -> float:
        """Seconds from the file change until `token` is refused (asked every 10 ms)."""
        changed = time.monotonic()
        while await outcome(stub, token) == grpc.StatusCode.OK:
            assert time.monotonic() - changed < 30, "the token is still accepted"
            await asyncio.sleep(0.01)
        return time.monotonic() - changed

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            assert await outcome(stub, TOKEN) == grpc.StatusCode.OK
            path.write_text(f"{HASHED_TOKEN}\n")  # TOKEN revoked
            removed = await refused_after(stub, TOKEN)
            assert await outcome(stub, TOKEN) == grpc.StatusCode.UNAUTHENTICATED
            assert await outcome(stub, HASHED_TOKEN) == grpc.StatusCode.OK
            path.write_text("")  # every token revoked
            emptied = await refused_after(stub, HASHED_TOKEN)
            assert await outcome(stub, HASHED_TOKEN) == grpc.StatusCode.UNAUTHENTICATED
            path.write_text(f"{TOKEN}\n")
            restored = time.monotonic()
            while await outcome(stub, TOKEN) != grpc.StatusCode.OK:
                assert time.monotonic() - restored < 30, "the restored file's token is still refused"
                await asyncio.sleep(0.01)
    finally:
        await running.stop(0)
    print(
        f"revocation: removed token refused after {removed:.3f}s, emptied file after {emptied:.3f}s "
        f"(reload interval {interval}s)"
    )
    # Done when: refused within the reload interval (generously: the interval plus 1 s of slack).
    assert removed < interval + 1.0
    assert emptied < interval + 1.0
