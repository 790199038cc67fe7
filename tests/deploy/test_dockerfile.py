"""The Dockerfile and .dockerignore, read statically (test_image_steps.py performs the steps)."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.deploy import server_contract as contract
from tests.deploy.dockerfile import (
    DOCKERFILE,
    PYTHON_TAG,
    REPO,
    UV_PIN,
    Stage,
    context_files,
    ignore_rules,
    is_ignored,
    parse,
)

NUMERIC_USER = re.compile(r"^(?P<uid>\d+)(?::(?P<gid>\d+))?$")


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE)


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def build(stages: list[Stage], runtime: Stage) -> Stage:
    sources = {instruction.flags.get("from") for instruction in runtime.all("COPY")}
    assert len(sources) == 1, f"the runtime stage copies from {sources}"
    (name,) = sources
    return next(stage for stage in stages if stage.name == name)


def test_every_stage_is_the_same_pinned_slim_python_3_11(stages: list[Stage]) -> None:
    bases = {stage.base for stage in stages}
    # One base: the virtual environment's interpreter path (/usr/local/bin/python3.11) exists in both stages.
    assert len(bases) == 1, bases
    (base,) = bases
    match = PYTHON_TAG.match(base)
    assert match, f"{base} is not python:3.11.Z-slim-bookworm"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'requires-python = ">={match["major"]}.{match["minor"]},' in pyproject


def test_uv_is_the_makefiles_pinned_version(stages: list[Stage]) -> None:
    pins = {pin["version"] for stage in stages for run in stage.all("RUN") for pin in UV_PIN.finditer(run.args)}
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert match
    assert pins == {match[1]}


def test_dependencies_come_from_the_lock_before_the_code(build: Stage) -> None:
    steps = [(instruction.keyword, instruction.args) for instruction in build.instructions]
    copies = [args for keyword, args in steps if keyword == "COPY"]
    assert copies[0].split() == ["pyproject.toml", "uv.lock", "./"], "the lock comes first, alone"
    syncs = [
        (index, shlex.split(args))
        for index, (keyword, args) in enumerate(steps)
        if keyword == "RUN" and args.startswith("uv ")
    ]
    assert [words[:2] for _, words in syncs] == [["uv", "sync"], ["uv", "sync"]], syncs
    (deps_index, deps), (project_index, project) = syncs
    assert set(deps[2:]) == {"--frozen", "--no-dev", "--no-install-project"}
    assert set(project[2:]) == {"--frozen", "--no-dev", "--no-editable"}
    code_copies = [index for index, (keyword, args) in enumerate(steps) if keyword == "COPY" and "service/" in args]
    assert code_copies
    assert deps_index < min(code_copies)
    assert max(code_copies) < project_index


def test_the_runtime_stage_copies_only_the_virtual_environment(build: Stage, runtime: Stage) -> None:
    venv = build.env({})["UV_PROJECT_ENVIRONMENT"]
    copies = runtime.all("COPY")
    assert [instruction.words() for instruction in copies] == [[venv, venv]]
    assert runtime.all("ADD") == []
    assert runtime.env({"PATH": "/usr/bin"})["PATH"].startswith(f"{venv}/bin:")


def test_the_service_runs_as_a_numeric_non_root_user(runtime: Stage) -> None:
    user = runtime.last("USER")
    assert user is not None
    match = NUMERIC_USER.match(user.args)
    assert match, f"USER {user.args} is not numeric (runAsNonRoot needs a number to check)"
    assert int(match["uid"]) != 0
    assert match["gid"] is None or int(match["gid"]) != 0
    created = " ".join(run.args for run in runtime.all("RUN"))
    assert f"--uid {match['uid']}" in created, "the image's /etc/passwd knows the user"
    # Nothing runs as root after USER.
    after = runtime.instructions[runtime.instructions.index(user) :]
    assert [instruction for instruction in after if instruction.keyword in {"RUN", "USER"}] == [user]


def test_the_entrypoint_is_exec_form_python_m_service(runtime: Stage) -> None:
    entrypoint = runtime.last("ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form() == ["python", "-m", "service"]
    assert runtime.all("CMD") == []
    stop = runtime.last("STOPSIGNAL")
    assert stop is None or stop.args == "SIGTERM"


def test_the_healthcheck_is_the_grpc_liveness_check(runtime: Stage) -> None:
    healthcheck = runtime.last("HEALTHCHECK")
    assert healthcheck is not None
    options, command = healthcheck.healthcheck_command()
    assert command == ["python", "-m", "service.probe", f"127.0.0.1:{contract.GRPC_PORT}", contract.LIVENESS]
    assert {"interval", "timeout", "retries", "start-period"} <= set(options)


def test_ports_and_addresses_are_the_contracts(stages: list[Stage], runtime: Stage) -> None:
    exposed = {int(port.split("/")[0]) for expose in runtime.all("EXPOSE") for port in expose.args.split()}
    assert exposed == {contract.GRPC_PORT, contract.METRICS_PORT}
    env = runtime.env({})
    assert env["TODO_GRPC_ADDRESS"] == contract.GRPC_ADDRESS
    assert env["TODO_METRICS_ADDRESS"] == contract.METRICS_ADDRESS
    # Bytecode is compiled at build time; nothing is written under a read-only root.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert any(stage.env({}).get("UV_COMPILE_BYTECODE") == "1" for stage in stages)
    for stage in stages:
        names = {name for name in stage.env({}) if name.startswith(("TODO_", "OTEL_"))}
        assert names <= contract.ENV, names - contract.ENV
        assert not names & contract.SECRET_ENV, "secrets never go into an image"


def test_the_build_context_is_exactly_what_the_copies_need(build: Stage) -> None:
    context = context_files()
    sources = [
        source.rstrip("/").removeprefix("./")
        for instruction in build.all("COPY")
        for source in instruction.words()[:-1]
    ]
    for source in sources:
        assert any(name == source or name.startswith(source + "/") for name in context), source
    unused = [
        name for name in context if not any(name == source or name.startswith(source + "/") for source in sources)
    ]
    assert unused == []
    for name in context:
        top = name.split("/")[0]
        assert top not in {"tests", ".git", ".venv", ".tools", "todo_client", "tools", "deploy"}, name
        assert "__pycache__" not in name.split("/"), name
        assert not name.endswith((".pyc", ".pyo")), name
    assert "service/__main__.py" in context
    assert "uv.lock" in context


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("tests/deploy/test_dockerfile.py", True),
        (".git/HEAD", True),
        (".venv/bin/python", True),
        ("Makefile", True),
        ("pyproject.toml", False),
        ("service/main.py", False),
        ("service/__pycache__/main.cpython-311.pyc", True),
        ("service/infrastructure/__pycache__", True),
        ("generated/todo/v1/todo_service_pb2.py", False),
        ("generated/todo/v1/todo_service_pb2.pyc", True),
        ("servicex/main.py", True),
    ],
)
def test_dockerignore_matching(path: str, ignored: bool) -> None:
    assert is_ignored(path, ignore_rules()) is ignored
