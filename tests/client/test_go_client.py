"""The Go client generated from the contract (clients/go) against the service.

`make tools` builds clients/go/cmd/todo-example (gofmt, go vet, go build) into
.tools/bin/todo-go-example; this runs it against `python -m service` on a
loopback port. The program creates, reads and lists an entry, deletes it, and
decodes the NOT_FOUND that follows through the contract's ErrorReason enum.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.support import REPO
from tests.support.process import running_service, tool
from todo_client.retry import DEFAULT_RETRY_POLICY, service_config

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process

SERVICE_CONFIG = REPO / "clients" / "service_config.json"


def run_example(address: str, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = tool("TODO_GO_EXAMPLE", REPO / ".tools" / "bin" / "todo-go-example", "run `make go-example`")
    return subprocess.run(
        [str(binary), "-addr", address, "-service-config", str(SERVICE_CONFIG), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_go_client_creates_reads_lists_and_decodes_not_found() -> None:
    with running_service() as address:
        result = run_example(address)
    assert result.returncode == 0, result.stderr
    created, got, listed, deleted, not_found = result.stdout.splitlines()
    match = re.fullmatch(r'created ([0-9a-f]{32}): "Write the Go client" \[clients go\] etag="1-[0-9a-f-]+"', created)
    assert match, created
    todo_id = match.group(1)
    assert re.fullmatch(rf"got {todo_id}: done=false created \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got), got
    assert listed == f"listed 1 entries, {todo_id} among them"
    assert deleted == f"deleted {todo_id}"
    assert not_found == f"not found: TODO_NOT_FOUND (ErrorReason 3) domain=todo.v1 code=NotFound id={todo_id}"


def test_the_go_client_fails_loudly_without_a_service(closed_port: int) -> None:
    result = run_example(f"127.0.0.1:{closed_port}", "-timeout", "3s")
    assert result.returncode == 1
    assert result.stdout == ""
    # CreateTodo is retried on UNAVAILABLE as clients/service_config.json says (the program sends a request_id).
    assert "todo-example: CreateTodo:" in result.stderr
    assert "code = Unavailable" in result.stderr
    assert "failed after 4 attempts" in result.stderr


def test_the_service_config_for_other_languages_is_the_clients_own() -> None:
    # One place: todo_client.retry derives it from the contract; scripts/generate-clients.sh writes the file.
    assert json.loads(SERVICE_CONFIG.read_text(encoding="utf-8")) == service_config(DEFAULT_RETRY_POLICY), (
        "clients/service_config.json is stale: run `make generate`"
    )
