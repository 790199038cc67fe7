"""The client against the service's own TLS, mTLS and token settings (not a test double)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.bootstrap import bootstrap
from service.infrastructure.config import Settings
from service.infrastructure.grpc.server import start_server
from tests.support.certificates import CertificateAuthority
from todo_client import TodoClient, UnauthenticatedError, UnavailableError

TOKEN = "client-token-5b1e"  # noqa: S105 (a throwaway test token)


async def test_mtls_and_token_against_the_real_server_settings(tmp_path: Path) -> None:
    ca = CertificateAuthority("service CA")
    server_pair = ca.issue_server("localhost")
    client_pair = ca.issue_client("caller")
    files = {
        "cert.pem": server_pair.certificate,
        "key.pem": server_pair.key,
        "ca.pem": ca.certificate,
        "tokens": f"{TOKEN}\n".encode(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    settings = Settings.from_env(
        {
            "TODO_GRPC_ADDRESS": "127.0.0.1:0",
            "TODO_TLS_CERT_FILE": str(tmp_path / "cert.pem"),
            "TODO_TLS_KEY_FILE": str(tmp_path / "key.pem"),
            "TODO_TLS_CLIENT_CA_FILE": str(tmp_path / "ca.pem"),
            "TODO_AUTH_TOKENS_FILE": str(tmp_path / "tokens"),
        }
    )
    running = await start_server(bootstrap(settings).api, settings)
    await running.set_serving(True)
    target = f"localhost:{running.port}"

    def mutual(token: str | None) -> TodoClient:
        return TodoClient.connect(
            target,
            tls=True,
            root_certificates=ca.certificate,
            client_certificate=client_pair.certificate,
            client_key=client_pair.key,
            token=token,
        )

    try:
        async with mutual(TOKEN) as client:
            todo = await client.create_todo("secured", tags=["tls"])
            assert (await client.get_todo(todo.id)) == todo
        async with mutual(None) as no_token:
            with pytest.raises(UnauthenticatedError) as caught:
                await no_token.get_todo(todo.id)
            assert caught.value.reason == "BEARER_TOKEN_MISSING"
            assert TOKEN not in str(caught.value)
        no_certificate = TodoClient.connect(target, tls=True, root_certificates=ca.certificate, token=TOKEN, retry=None)
        async with no_certificate:
            with pytest.raises(UnavailableError):
                await no_certificate.get_todo(todo.id, timeout=5)
    finally:
        await running.stop(0)
