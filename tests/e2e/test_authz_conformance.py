"""The service decides as grpc-go's own authorization engine does, for the same policies, certificates and calls.

tools/authzcheck serves `authz.NewStatic(policy)` (grpc-go, pinned in its
go.mod) over mTLS; the service serves the same policy with
TODO_AUTHZ_POLICY_FILE over mTLS with the same CA. Every combination of
client certificate (URI SAN, DNS SANs, a subject alone, one matched by
nothing), method path (the API's methods and one that does not exist) and
metadata (headers the policies match, a repeated one) is sent to both, and
each call must be refused (PERMISSION_DENIED) by both or by neither.

Health is left out on purpose: the service never puts it under the policy
(docs/security.md), grpc-go's interceptor would.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from service.bootstrap import bootstrap
from service.infrastructure.config import Settings
from service.infrastructure.config.credentials import TlsSettings
from service.infrastructure.grpc.server import start_server
from tests.support.certificates import CertificateAuthority, KeyPair
from tests.support.docs import block_after, page
from tests.support.process import installed_tool
from todo.v1 import todo_service_pb2 as pb

pytestmark = pytest.mark.process  # runs tools/authzcheck

SERVICE = "/todo.v1.TodoService/"
POLICIES: dict[str, dict[str, Any]] = {
    "docs-example": json.loads(block_after(page("docs/security.md"), "## Authorization policy", "json")),
    "matchers": {
        "name": "matchers",
        "deny_rules": [
            {"name": "no-deletes", "source": {"principals": ["*"]}, "request": {"paths": [SERVICE + "DeleteTodo"]}}
        ],
        "allow_rules": [
            {"name": "spiffe-gets", "source": {"principals": ["spiffe://example.org/*"]},
             "request": {"paths": [SERVICE + "Get*"]}},
            {"name": "svc-suffix", "source": {"principals": ["*.todo.svc"]}, "request": {"paths": ["*Todo"]}},
            {"name": "by-subject", "source": {"principals": ["CN=auditor,O=Example\\, Inc"]},
             "request": {"paths": [SERVICE + "ListTodos"]}},
        ],
    },
    "headers": {
        "name": "headers",
        "deny_rules": [{"name": "no-debug", "request": {"headers": [{"key": "x-debug", "values": ["*"]}]}}],
        "allow_rules": [
            {"name": "teams", "request": {"paths": ["*"], "headers": [{"key": "x-team", "values": ["alpha", "be*"]}]}}
        ],
    },
    "dns-after-uri": {
        "name": "dns-after-uri",
        # reader.dns is a DNS SAN of a certificate with a URI SAN: grpc-go never matches it; stranger's is matched.
        "deny_rules": [{"name": "by-dns", "source": {"principals": ["reader.dns", "stranger.example"]}}],
        "allow_rules": [{"name": "everyone"}],
    },
}  # fmt: skip
PATHS = ("GetTodo", "ListTodos", "CreateTodo", "DeleteTodo", "Nope")
METADATA: tuple[tuple[tuple[str, str], ...], ...] = (
    (),
    (("x-team", "alpha"),),
    (("x-team", "beta"),),
    (("x-team", "gamma"),),
    (("x-debug", "1"),),
    (("x-team", "gamma"), ("x-team", "alpha")),
)
REQUESTS = {
    "GetTodo": pb.GetTodoRequest(id="x"),
    "ListTodos": pb.ListTodosRequest(),
    "CreateTodo": pb.CreateTodoRequest(todo=pb.Todo(content="c")),
    "DeleteTodo": pb.DeleteTodoRequest(id="x"),
    "Nope": pb.GetTodoRequest(id="x"),
}


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: CertificateAuthority
    clients: dict[str, KeyPair]

    def write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = CertificateAuthority("conformance CA")
    clients = {
        "reader": ca.issue_client(
            "reader", uris=("spiffe://example.org/ns/todo/sa/reader",), dns_names=("reader.dns",)
        ),
        "writer": ca.issue_client("writer.todo.svc"),
        "auditor": ca.issue_client("auditor", dns_names=(), organization="Example, Inc"),
        "stranger": ca.issue_client("stranger", dns_names=("stranger.example", "x.todo.svc.example")),
    }  # fmt: skip
    return Pki(tmp_path_factory.mktemp("pki"), ca, clients)


@pytest.fixture(scope="module")
def server_files(pki: Pki) -> tuple[str, str, str]:
    server = pki.ca.issue_server("localhost")
    return (
        pki.write("server.pem", server.certificate),
        pki.write("server.key", server.key),
        pki.write("ca.pem", pki.ca.certificate),
    )


@pytest.fixture
def grpc_go(pki: Pki, server_files: tuple[str, str, str], request: pytest.FixtureRequest) -> Iterator[int]:
    """tools/authzcheck serving the policy named by the test's parameter; yields its port."""
    name: str = request.node.callspec.params["policy"]
    policy = pki.write(f"{name}.json", json.dumps(POLICIES[name]).encode())
    cert, key, ca = server_files
    argv = [installed_tool("authzcheck", "TODO_AUTHZCHECK"), "-policy", policy, "-cert", cert, "-key", key, "-ca", ca]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, f"authzcheck did not start: {line!r} {process.stderr.read() if process.stderr else ''}"
        yield int(match[1])
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reaps it and closes its pipes


def channel_to(pki: Pki, client: str, port: int) -> grpc.aio.Channel:
    pair = pki.clients[client]
    credentials = grpc.ssl_channel_credentials(pki.ca.certificate, pair.key, pair.certificate)
    return grpc.aio.secure_channel(f"localhost:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


async def decisions(pki: Pki, port: int) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], bool]:
    """For every client, path and metadata: True when the call was refused with PERMISSION_DENIED."""
    found = {}
    for client in pki.clients:
        async with channel_to(pki, client, port) as channel:
            for path in PATHS:
                call = channel.unary_unary(SERVICE + path, None, None)
                for metadata in METADATA:
                    code = grpc.StatusCode.OK
                    try:
                        await call(REQUESTS[path].SerializeToString(), metadata=metadata, timeout=10)
                    except grpc.aio.AioRpcError as error:
                        code = error.code()
                    assert code != grpc.StatusCode.UNAVAILABLE, (client, path, metadata)
                    found[(client, path, metadata)] = code == grpc.StatusCode.PERMISSION_DENIED
    return found


@pytest.mark.parametrize("policy", sorted(POLICIES))
async def test_the_service_decides_as_grpc_go_authz(
    policy: str, pki: Pki, server_files: tuple[str, str, str], grpc_go: int
) -> None:
    cert, key, ca = server_files
    path = pki.write(f"{policy}.service.json", json.dumps(POLICIES[policy]).encode())
    settings = Settings(
        grpc_address="127.0.0.1:0",
        tls=TlsSettings(cert, key, ca),
        authz_policy=Settings.from_env({"TODO_AUTHZ_POLICY_FILE": path}).authz_policy,
    )
    running = await start_server(bootstrap(settings).api, settings)
    await running.set_serving(True)
    try:
        ours, theirs = await asyncio.gather(decisions(pki, running.port), decisions(pki, grpc_go))
    finally:
        await running.stop(0)
    differing = {call: (ours[call], theirs[call]) for call in ours if ours[call] != theirs[call]}
    denied = sum(theirs.values())
    print(f"policy {policy}: {len(theirs)} calls, grpc-go denied {denied}; the service differs on {len(differing)}")
    assert 0 < denied < len(theirs), "a policy that decides every call the same way tests nothing"
    assert differing == {}, "(service denied, grpc-go denied) for (client, path, metadata)"
