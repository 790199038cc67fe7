"""Plaintext, TLS, mutual TLS, bearer tokens, and closing the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from tests.support.certificates import CertificateAuthority, KeyPair
from tests.support.servers import FAST_RETRY, FaultInjector, todo_server
from todo_client import ClientClosedError, TodoClient, UnavailableError, channel_options

TOKEN = "s3cr3t-T0ken"  # noqa: S105 (a made-up token for the test server)


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: KeyPair
    client: KeyPair
    other_ca: CertificateAuthority
    foreign_client: KeyPair


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = CertificateAuthority("todo test CA")
    other_ca = CertificateAuthority("some other CA")
    return Pki(
        ca=ca,
        server=ca.issue_server("localhost"),
        client=ca.issue_client("todo-caller"),
        other_ca=other_ca,
        foreign_client=other_ca.issue_client("todo-caller"),
    )


def server_credentials(pki: Pki, *, mutual: bool = False, pair: KeyPair | None = None) -> grpc.ServerCredentials:
    pair = pair or pki.server
    return grpc.ssl_server_credentials(
        [(pair.key, pair.certificate)],
        root_certificates=pki.ca.certificate if mutual else None,
        require_client_auth=mutual,
    )


async def works(client: TodoClient) -> None:
    todo = await client.create_todo("over the wire")
    assert await client.get_todo(todo.id) == todo


async def refused(client: TodoClient) -> None:
    with pytest.raises(UnavailableError):
        await client.create_todo("never stored")


class TestTls:
    async def test_tls_client_with_the_ca_works(self, pki: Pki) -> None:
        async with (
            todo_server(credentials=server_credentials(pki)) as port,
            TodoClient.connect(f"127.0.0.1:{port}", tls=True, root_certificates=pki.ca.certificate) as client,
        ):
            await works(client)

    async def test_plaintext_client_against_a_tls_server_fails(self, pki: Pki) -> None:
        async with (
            todo_server(credentials=server_credentials(pki)) as port,
            TodoClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY) as client,
        ):
            await refused(client)

    async def test_tls_client_that_does_not_trust_the_server_fails(self, pki: Pki) -> None:
        async with (
            todo_server(credentials=server_credentials(pki)) as port,
            TodoClient.connect(
                f"127.0.0.1:{port}", tls=True, root_certificates=pki.other_ca.certificate, retry=FAST_RETRY
            ) as client,
        ):
            await refused(client)

    async def test_server_name_override_checks_the_certificate_against_that_name(self, pki: Pki) -> None:
        named_only = pki.ca.issue_server("todo.internal", ip_addresses=())
        credentials = server_credentials(pki, pair=named_only)
        async with todo_server(credentials=credentials) as port:
            target = f"127.0.0.1:{port}"
            async with TodoClient.connect(
                target, tls=True, root_certificates=pki.ca.certificate, retry=FAST_RETRY
            ) as client:
                await refused(client)
            async with TodoClient.connect(
                target, tls=True, root_certificates=pki.ca.certificate, tls_server_name="todo.internal"
            ) as client:
                await works(client)


class TestMutualTls:
    @pytest.fixture
    async def port(self, pki: Pki) -> AsyncIterator[int]:
        async with todo_server(credentials=server_credentials(pki, mutual=True)) as port:
            yield port

    async def test_client_with_a_certificate_from_the_ca_works(self, pki: Pki, port: int) -> None:
        async with TodoClient.connect(
            f"127.0.0.1:{port}",
            tls=True,
            root_certificates=pki.ca.certificate,
            client_certificate=pki.client.certificate,
            client_key=pki.client.key,
        ) as client:
            await works(client)

    async def test_client_without_a_certificate_is_refused(self, pki: Pki, port: int) -> None:
        async with TodoClient.connect(
            f"127.0.0.1:{port}", tls=True, root_certificates=pki.ca.certificate, retry=FAST_RETRY
        ) as client:
            await refused(client)

    async def test_client_with_a_certificate_from_another_ca_is_refused(self, pki: Pki, port: int) -> None:
        async with TodoClient.connect(
            f"127.0.0.1:{port}",
            tls=True,
            root_certificates=pki.ca.certificate,
            client_certificate=pki.foreign_client.certificate,
            client_key=pki.foreign_client.key,
            retry=FAST_RETRY,
        ) as client:
            await refused(client)


class TestBearerToken:
    async def exercise(self, client: TodoClient) -> None:
        """One call of every method: eight calls."""
        todo = await client.create_todo("authorised", tags=["a"])
        await client.get_todo(todo.id)
        await client.list_todos()
        await client.add_tag(todo.id, "b")
        untagged = await client.remove_tag(todo.id, "b")
        updated = await client.update_todo(todo.id, done=True, etag=untagged.etag)
        again = await client.update_todo(todo.id, content="again")
        await client.delete_todo(todo.id, etag=again.etag)
        assert updated.done

    async def test_plaintext_sends_the_token_as_metadata_on_every_call(self) -> None:
        calls = FaultInjector()
        async with (
            todo_server(interceptors=(calls,)) as port,
            TodoClient.connect(f"127.0.0.1:{port}", token=TOKEN) as client,
        ):
            await self.exercise(client)
        assert len(calls.metadata) == sum(calls.attempts.values()) == 8
        assert set(calls.attempts) == {
            "CreateTodo",
            "GetTodo",
            "ListTodos",
            "AddTag",
            "RemoveTag",
            "UpdateTodo",
            "DeleteTodo",
        }
        assert all(metadata.get("authorization") == f"Bearer {TOKEN}" for metadata in calls.metadata)

    async def test_tls_sends_the_token_as_call_credentials_on_every_call(self, pki: Pki) -> None:
        calls = FaultInjector()
        async with (
            todo_server(interceptors=(calls,), credentials=server_credentials(pki)) as port,
            TodoClient.connect(
                f"127.0.0.1:{port}", tls=True, root_certificates=pki.ca.certificate, token=TOKEN
            ) as client,
        ):
            await self.exercise(client)
        assert len(calls.metadata) == 8
        assert all(metadata.get("authorization") == f"Bearer {TOKEN}" for metadata in calls.metadata)

    async def test_without_a_token_no_authorization_is_sent(self) -> None:
        calls = FaultInjector()
        async with (
            todo_server(interceptors=(calls,)) as port,
            TodoClient.connect(f"127.0.0.1:{port}") as client,
        ):
            await self.exercise(client)
        assert len(calls.metadata) == 8
        assert not any("authorization" in metadata for metadata in calls.metadata)

    @pytest.mark.parametrize("token", ["", "has space", "line\nbreak", "ünïcode"])
    def test_a_token_that_is_no_valid_header_value_is_refused(self, token: str) -> None:
        with pytest.raises(ValueError, match="token"):
            TodoClient.connect("127.0.0.1:1", token=token)


class TestArguments:
    def test_certificate_and_key_go_together(self, pki: Pki) -> None:
        with pytest.raises(ValueError, match="both or neither"):
            TodoClient.connect("127.0.0.1:1", tls=True, client_certificate=pki.client.certificate)
        with pytest.raises(ValueError, match="both or neither"):
            TodoClient.connect("127.0.0.1:1", tls=True, client_key=pki.client.key)

    def test_tls_material_without_tls_is_refused(self, pki: Pki) -> None:
        with pytest.raises(ValueError, match="tls=True"):
            TodoClient.connect("127.0.0.1:1", root_certificates=pki.ca.certificate)
        with pytest.raises(ValueError, match="tls=True"):
            TodoClient.connect("127.0.0.1:1", tls_server_name="todo.internal")


class TestClosing:
    async def test_async_with_closes_the_channel(self) -> None:
        async with todo_server() as port:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=channel_options())
            async with TodoClient(channel) as client:
                await works(client)
                assert channel.get_state() != grpc.ChannelConnectivity.SHUTDOWN
            assert channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN
            with pytest.raises(ClientClosedError):
                await client.list_todos()

    async def test_connect_as_context_manager_and_explicit_close(self) -> None:
        async with todo_server() as port:
            async with TodoClient.connect(f"127.0.0.1:{port}") as client:
                todo = await client.create_todo("kept")
            with pytest.raises(ClientClosedError):
                await client.get_todo(todo.id)
            other = TodoClient.connect(f"127.0.0.1:{port}")
            assert await other.get_todo(todo.id) == todo
            await other.close()
            await other.close()  # closing twice is harmless
            with pytest.raises(ClientClosedError):
                await other.update_todo(todo.id, done=True, etag=todo.etag)


class TestTokenOverPlaintext:
    """A bearer token in plaintext can be read and replayed by anyone on the path: loopback only, unless opted in."""

    @pytest.mark.parametrize(
        "target",
        [
            "todo.internal:50051",
            "dns:///todo.internal:443",
            "10.0.0.7:50051",
            "ipv4:127.0.0.1:1,10.0.0.1:1",
            "[2001:db8::1]:1",
        ],
    )
    def test_a_token_in_plaintext_to_another_machine_is_refused(self, target: str) -> None:
        with pytest.raises(ValueError, match="refusing to send a bearer token in plaintext"):
            TodoClient.connect(target, token=TOKEN)

    @pytest.mark.parametrize(
        "target",
        ["localhost:50051", "127.0.0.5:1", "[::1]:1", "dns:///localhost:1", "unix:/tmp/todo.sock", "ipv4:127.0.0.1:1"],
    )
    async def test_loopback_targets_may_carry_a_token_in_plaintext(self, target: str) -> None:
        async with TodoClient.connect(target, token=TOKEN):
            pass

    async def test_a_caller_may_opt_in_when_the_network_encrypts(self) -> None:
        async with TodoClient.connect("todo.internal:50051", token=TOKEN, token_over_plaintext=True):
            pass
