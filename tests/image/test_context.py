"""The build context as the builder sees it, after .dockerignore (podman reads the same file)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from tests.support.image import podman

REPO = Path(__file__).resolve().parents[2]
LISTED = re.compile(r"^context: (?P<path>.+)$", re.MULTILINE)
# What the Dockerfile's build stage COPYs; nothing else goes into the context.
COPIED = {"pyproject.toml", "uv.lock", "uv-build-requirements.txt", "README.md", "generated", "service"}


def context_files(base_image: str) -> set[str]:
    """Every file `COPY . ` receives, listed by a throwaway build on the same base."""
    with tempfile.TemporaryDirectory() as directory:
        containerfile = Path(directory) / "Containerfile"
        containerfile.write_text(
            f"FROM {base_image}\nCOPY . /context\nRUN find /context -type f -printf 'context: %P\\n'\n",
            encoding="utf-8",
        )
        result = podman(
            "build", "--isolation=chroot", "--pull=never", "--network=host", "--layers=false", "--no-cache",
            "--rm", "--file", str(containerfile), str(REPO),
        )  # fmt: skip
    image_id = result.stdout.strip().splitlines()[-1]
    podman("rmi", "--force", image_id, check=False)
    return {match["path"] for match in LISTED.finditer(result.stdout + result.stderr)}


def test_the_context_holds_only_what_the_build_copies(base_image: str) -> None:
    files = context_files(base_image)
    assert {"pyproject.toml", "uv.lock", "README.md", "service/__main__.py"} <= files
    assert any(name.startswith("generated/todo/v1/") for name in files)
    assert {name.split("/")[0] for name in files} <= COPIED
    compiled = [name for name in files if "__pycache__" in name.split("/") or name.endswith((".pyc", ".pyo"))]
    assert compiled == []
