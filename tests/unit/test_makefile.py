"""What the Makefile does for a newcomer, read through `make -n` (nothing is run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def dry_run(*arguments: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.fail("`make` is not on PATH: install GNU make (the project's set-up commands need it)")
    result = subprocess.run(
        [make, "-n", "-C", str(REPO), *arguments], capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout


def test_make_clean_keeps_the_ferretdb_data() -> None:
    clean = dry_run("clean")
    assert "rm -rf" in clean
    assert ".data" not in clean
    ferretdb = dry_run("ferretdb", "FERRETDB=/bin/true", "FERRETDB_SOURCES=")
    assert f"-state-dir {REPO}/.data/ferretdb" in ferretdb
    assert "/.tools/" not in ferretdb.split("-state-dir", 1)[1]
    assert ".data/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_a_cold_install_says_what_it_installs(tmp_path: Path) -> None:
    cold = dry_run("install", f"VENV={tmp_path / 'venv'}", f"TOOLS={tmp_path / 'tools'}")
    assert 'echo "make: installing uv' in cold
    assert 'echo "make: installing the locked Python dependencies' in cold
    assert cold.index("installing the locked Python dependencies") < cold.index(" sync ")


def test_a_warm_install_is_quiet(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    uv = tmp_path / "tools" / "uv" / "bin" / "uv"
    uv.parent.mkdir(parents=True)
    uv.touch()
    warm = dry_run("install", f"VENV={venv}", f"TOOLS={tmp_path / 'tools'}")
    assert "echo" not in warm
    assert " sync " in warm


def test_cold_go_tools_say_what_they_build(tmp_path: Path) -> None:
    tools = dry_run("tools", f"TOOLS={tmp_path / 'tools'}")
    for tool in ("grpcurl", "grpc-health-probe", "the FerretDB test server", "ghz", "grpcui", "toxiproxy"):
        assert f'echo "make: building {tool}' in tools


def test_the_quick_loop_builds_no_go_tool(tmp_path: Path) -> None:
    fast = dry_run("test-fast", f"TOOLS={tmp_path / 'tools'}")
    assert "TODO_TEST_FAST=1" in fast
    assert '-m "not process and not mongo"' in fast
    assert "go install" not in fast
    assert "go build" not in fast
