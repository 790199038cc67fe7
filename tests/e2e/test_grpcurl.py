"""The real grpcurl binary against the real service process, through reflection.

`test_readme_session` runs the grpcurl session of README.md verbatim (only the
address differs), so the README's session cannot rot.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import REPO
from tests.support.process import grpcurl, grpcurl_binary, running_service
from todo.v1 import todo_service_pb2 as pb

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process

README_ADDRESS = "localhost:50051"


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with running_service() as served:
        yield served


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else result.stdout


def test_list_and_describe_through_reflection(address: str) -> None:
    services = ok(grpcurl(address, "list")).split()
    assert {"todo.v1.TodoService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
    description = ok(grpcurl(address, "describe", "todo.v1.TodoService"))
    for method in pb.DESCRIPTOR.services_by_name["TodoService"].methods:
        rpc = method.name
        assert f"rpc {rpc} ( .todo.v1.{rpc}Request ) returns ( .todo.v1.{rpc}Response )" in description
    message = ok(grpcurl(address, "describe", "todo.v1.Todo"))
    assert ".google.protobuf.Timestamp create_time = 5" in message


def test_round_trip_with_a_stale_etag(address: str) -> None:
    created = ok(grpcurl(address, "todo.v1.TodoService/CreateTodo", data={"todo": {"content": "Round trip"}}))["todo"]
    todo_id, first_etag = created["id"], created["etag"]
    tagged = ok(grpcurl(address, "todo.v1.TodoService/AddTag", data={"id": todo_id, "tag": "Trip"}))["todo"]
    assert tagged["tags"] == ["trip"]
    listed = ok(grpcurl(address, "todo.v1.TodoService/ListTodos", data={"search": "ROUND", "tags": ["trip"]}))
    assert [todo["id"] for todo in listed["todos"]] == [todo_id]
    stale = grpcurl(
        address,
        "todo.v1.TodoService/UpdateTodo",
        data={"todo": {"id": todo_id, "done": True, "etag": first_etag}, "update_mask": {"paths": ["done"]}},
    )
    assert stale.returncode != 0
    assert "Code: Aborted" in stale.stderr
    ok(grpcurl(address, "todo.v1.TodoService/DeleteTodo", data={"id": todo_id, "etag": tagged["etag"]}))
    missing = grpcurl(address, "todo.v1.TodoService/GetTodo", data={"id": todo_id})
    assert "Code: NotFound" in missing.stderr


def test_health_check_is_serving(address: str) -> None:
    assert ok(grpcurl(address, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}
    named = grpcurl(address, "grpc.health.v1.Health/Check", data={"service": "todo.v1.TodoService"})
    assert ok(named) == {"status": "SERVING"}


def readme_session() -> list[tuple[list[str], str | None]]:
    """(argv, expected error) for each grpcurl command of the README session."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- grpcurl-session:start -->(.*?)<!-- grpcurl-session:end -->", text, re.S)
    assert match, "README.md lost its grpcurl session markers"
    steps: list[tuple[list[str], str | None]] = []
    for raw in match[1].splitlines():
        line = raw.strip()
        if line.startswith("grpcurl "):
            steps.append((shlex.split(line), None))
        elif line.startswith("# ERROR:") and steps:
            steps[-1] = (steps[-1][0], line.removeprefix("# ERROR:").strip())
    assert len(steps) >= 6
    return steps


def test_readme_session(address: str) -> None:
    outputs: dict[str, Any] = {}
    for readme_argv, expected_error in readme_session():
        assert README_ADDRESS in readme_argv, readme_argv
        argv = [
            grpcurl_binary() if arg == "grpcurl" else address if arg == README_ADDRESS else arg for arg in readme_argv
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if expected_error is None:
            outputs[argv[-1]] = ok(result)
        else:
            assert result.returncode != 0, f"{argv} should fail with {expected_error}"
            assert expected_error in result.stderr, result.stderr
    assert outputs["todo.v1.TodoService/UpdateTodo"]["todo"]["done"] is True
    assert outputs["todo.v1.TodoService/ListTodos"]["todos"][0]["tags"] == ["errands", "home"]
    assert outputs["grpc.health.v1.Health/Check"] == {"status": "SERVING"}
