"""Commands the docs print run as written: the stubs they generate are the committed ones.

docs/clients.md shows the protoc calls that generate the Python stubs and the
Go client's package. Each runs here from the repository's root, with only its
output directory moved to a temporary one, and what it writes must be what is
committed (generated/todo/v1, clients/go/todo/v1).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.docs import block_after, page
from tests.support.process import refuse_in_fast_mode

pytestmark = pytest.mark.process  # runs protoc and its plugins


def run_documented(marker: str, output: str, into: Path) -> None:
    """The `sh` block after `marker` in docs/clients.md, with `--*_out=<output>` writing into `into`."""
    refuse_in_fast_mode("protoc")
    command = block_after(page("docs/clients.md"), marker, "sh")
    assert f"_out={output} " in command, command
    command = command.replace(f"_out={output} ", f"_out={into} ")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=REPO,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def same_files(written: Path, committed: Path, pattern: str) -> None:
    names = sorted(path.name for path in written.glob(pattern))
    assert names, f"nothing was written to {written}"
    assert names == sorted(path.name for path in committed.glob(pattern))
    for name in names:
        assert (written / name).read_bytes() == (committed / name).read_bytes(), name


def test_the_python_stubs_command(tmp_path: Path) -> None:
    run_documented("Generating the Python stubs yourself", "generated", tmp_path)
    same_files(tmp_path / "todo" / "v1", REPO / "generated" / "todo" / "v1", "*_pb2*")


def test_the_go_stubs_command(tmp_path: Path) -> None:
    plugins = sorted(REPO.glob(".tools/protoc-plugins-go*"))
    if not plugins:
        pytest.fail("the protoc Go plugins are missing: run `make go-plugins` (make check does)")
    run_documented("Generation, as `make generate` runs it", "clients/go", tmp_path)
    same_files(tmp_path / "todo" / "v1", REPO / "clients" / "go" / "todo" / "v1", "*.go")
