"""The service as its own process: start-up, configuration errors, SIGTERM drain."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.support import REPO
from tests.support.certificates import CertificateAuthority
from tests.support.docs import block_after, page
from tests.support.process import ServiceProcess
from tests.support.slow_service import open_gate
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process


def run_with(
    env: dict[str, str], argv: tuple[str, ...] = (sys.executable, "-m", "service")
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_invalid_configuration_is_one_line_and_exit_code_2() -> None:
    for env in (
        {"TODO_GRPC_ADDRESS": "localhost"},
        {"TODO_GRPC_ADDRESS": "127.0.0.1:99999"},
        {"TODO_LOG_LEVEL": "chatty"},
        {"TODO_SHUTDOWN_GRACE_SECONDS": "-1"},
        {"TODO_MONGODB_URI": "mongodb://admin:s3cret@db:notaport/"},
        {"TODO_MONGODB_URI": "mongodb://db/", "TODO_MONGODB_DRIVER": "odm"},
    ):
        result = run_with(env)
        assert result.returncode == 2, (env, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("todo-service: configuration error:")
        assert list(env)[-1] in lines[0]
        assert "s3cret" not in result.stderr


def test_the_documented_configuration_error_is_what_the_service_prints() -> None:
    """The block of docs/configuration.md: its command (with its environment), then the line it prints."""
    command, printed = block_after(page("docs/configuration.md"), "# Configuration", "sh").strip().splitlines()
    assignments, argv = command.removeprefix("$ ").split(" .venv/bin/python ")
    env = dict(assignment.split("=", 1) for assignment in assignments.split())
    result = run_with(env, (str(REPO / ".venv" / "bin" / "python"), *argv.split()))
    assert (result.returncode, result.stdout, result.stderr) == (2, "", printed + "\n")


def test_an_address_in_use_is_a_clear_error_not_a_traceback() -> None:
    with ServiceProcess() as first:
        address = first.wait_serving()
        result = run_with({"TODO_GRPC_ADDRESS": address})
        assert result.returncode == 1
        assert f"cannot listen on {address}" in result.stderr
        assert "Traceback" not in result.stderr
        assert first.terminate() == 0


def test_a_metrics_port_in_use_is_a_clear_error_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_with({"TODO_GRPC_ADDRESS": "127.0.0.1:0", "TODO_METRICS_ADDRESS": address})
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1, result.stderr
    assert f"cannot listen on {address} (metrics)" in errors[0]
    assert "Traceback" not in result.stderr


def test_an_unusable_tokens_file_is_a_one_line_configuration_error(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# no token yet\n")
    result = run_with({"TODO_GRPC_ADDRESS": "127.0.0.1:0", "TODO_AUTH_TOKENS_FILE": str(tokens)})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("todo-service: configuration error: TODO_AUTH_TOKENS_FILE")


def test_the_start_up_line_is_the_readmes(tmp_path: Path) -> None:
    """`make run`'s start-up line as the README shows it: only the time, the process id and the port differ."""
    documented = block_after(page("README.md"), "The\nstart-up line says what is on").strip()
    with ServiceProcess({"TODO_LOG_FORMAT": "console"}) as service:
        port = service.wait_serving().rsplit(":", 1)[1]
        line = service.wait_for(r"^.* service: serving todo\.v1\.TodoService on .*$").group(0).strip()
        assert service.terminate() == 0
    prefix = re.compile(r"^\S+ \S+ INFO +\d+ ")  # date, time, level, process id
    assert prefix.match(line), line
    assert prefix.sub("", line) == prefix.sub("", documented).replace(":50051 ", f":{port} ")


def test_the_start_up_line_says_what_is_on_and_console_lines_carry_the_pid() -> None:
    with ServiceProcess({"TODO_LOG_FORMAT": "console", "TODO_REFLECTION": "off"}) as service:
        service.wait_serving()
        line = service.wait_for(r"serving todo\.v1\.TodoService on .*").group(0)
        assert service.terminate() == 0
    for part in (
        "store: in-memory store",
        "TLS: off",
        "tokens: off",
        "reflection: off",
        "tracing: off",
        "metrics: off",
        "workers: 1",
    ):
        assert part in line, line
    pid = f" {service.process.pid} service"
    assert all(pid in text for text in service.output.splitlines() if " service" in text), service.output


async def test_sigterm_lets_the_in_flight_rpc_finish_and_exits_0(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with ServiceProcess({"TODO_TEST_READ_GATE": str(gate)}, module="tests.support.slow_service") as service:
        address = service.wait_serving()
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            todo = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="drain me")))).todo
            in_flight = asyncio.ensure_future(stub.GetTodo(pb.GetTodoRequest(id=todo.id)))
            await asyncio.to_thread(service.wait_for, f"slow read started: {todo.id}")
            service.process.terminate()  # SIGTERM while the read waits at the gate
            await asyncio.to_thread(service.wait_for, "shutting down: no new RPCs")
            assert not in_flight.done(), "the read finished before the gate opened"
            await asyncio.to_thread(open_gate, str(gate))  # the server is stopping: now let the read finish
            response = await in_flight
            assert response.todo == todo
            code = await asyncio.to_thread(service.wait)
        assert code == 0, service.output
        assert "Traceback" not in service.output


async def test_sigint_also_stops_cleanly() -> None:
    with ServiceProcess() as service:
        address = service.wait_serving()
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="x")))
        service.process.send_signal(2)
        assert service.wait() == 0, service.output


def test_probe_command_reports_serving_and_failure() -> None:
    with ServiceProcess() as service:
        address = service.wait_serving()
        probe = [sys.executable, "-m", "service.probe", address]
        ok = subprocess.run(probe, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
        assert (ok.returncode, ok.stdout.strip()) == (0, "SERVING")
        unknown = subprocess.run(
            [*probe, "no.such.Service"], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        )
        assert unknown.returncode == 1
        assert "NOT_FOUND" in unknown.stderr
        assert service.terminate() == 0
    after = subprocess.run(probe, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert after.returncode == 1


def test_probe_help_prints_usage_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.probe", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m service.probe")
    assert "health check failed" not in result.stdout + result.stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_each_event_loop_serves_and_stops_cleanly(loop: str) -> None:
    with ServiceProcess({"TODO_EVENT_LOOP": loop}) as service:
        async with grpc.aio.insecure_channel(service.wait_serving()) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            created = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=f"on {loop}")))).todo
            assert (await stub.GetTodo(pb.GetTodoRequest(id=created.id))).todo == created
        assert await asyncio.to_thread(service.terminate) == 0, service.output


def test_a_garbage_or_mismatched_tls_key_exits_2_with_one_line_naming_the_file(tmp_path: Path) -> None:
    ca = CertificateAuthority("test CA")
    cert = tmp_path / "server.pem"
    cert.write_bytes(ca.issue_server("localhost").certificate)
    key = tmp_path / "server.key"
    other_key = ca.issue_server("x").key
    for content, problem in ((b"garbage\n", "is not a usable PEM private key"), (other_key, "does not match")):
        key.write_bytes(content)
        key.chmod(0o600)
        result = run_with({"TODO_TLS_CERT_FILE": str(cert), "TODO_TLS_KEY_FILE": str(key)})
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"todo-service: configuration error: TODO_TLS_KEY_FILE {str(key)!r} {problem}")


def test_mongodb_with_a_placeholder_or_no_page_token_secret_exits_2() -> None:
    mongo = {"TODO_MONGODB_URI": "mongodb://127.0.0.1:1/"}
    for env in (mongo, {**mongo, "TODO_PAGE_TOKEN_SECRET": "changeme"}):
        result = run_with(env)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "TODO_PAGE_TOKEN_SECRET" in lines[0]
        assert "changeme" not in lines[0]


def test_an_expired_certificate_and_a_loose_key_are_logged_at_warning(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    pair = CertificateAuthority("test CA").issue_server(
        "localhost", valid=(now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
    )
    (tmp_path / "server.pem").write_bytes(pair.certificate)
    (tmp_path / "server.key").write_bytes(pair.key)
    (tmp_path / "server.key").chmod(0o644)
    env = {"TODO_TLS_CERT_FILE": str(tmp_path / "server.pem"), "TODO_TLS_KEY_FILE": str(tmp_path / "server.key")}
    with ServiceProcess(env) as service:
        service.wait_serving()
        assert service.terminate() == 0
    warnings = [json.loads(line) for line in service.output.splitlines() if '"WARNING"' in line]
    messages = [str(line["message"]) for line in warnings]
    assert any("the certificate expired on" in message for message in messages), service.output
    assert any("is readable by group or others" in message for message in messages), service.output
