"""The image under test and the podman commands the tests use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

# The image `make image` builds (Makefile IMAGE); `make image-test` passes it here.
IMAGE_ENV = "TODO_IMAGE"
# The base it was built on (the stand-in from scripts/image-base.sh, or the official image).
BASE_ENV = "TODO_IMAGE_BASE"
HOW = "build and test it with `make image-test` (or `make image` and set TODO_IMAGE)"
# This sandbox lets runc set only modest rlimits (podman's defaults are refused with
# "setrlimit: operation not permitted"); a real host needs none of these flags.
RUN_LIMITS = ("--runtime=runc", "--ulimit=nofile=4096:4096", "--ulimit=nproc=1024:1024")


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    program = shutil.which("podman")
    if program is None:
        raise RuntimeError(f"podman is not installed: {HOW} (scripts/image-base.sh installs it)")
    result = subprocess.run([program, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def image_name(variable: str = IMAGE_ENV) -> str:
    name = os.environ.get(variable)
    if not name:
        raise RuntimeError(f"{variable} is not set: {HOW}")
    if podman("image", "exists", name, check=False).returncode != 0:
        raise RuntimeError(f"{variable}={name} is not in podman's storage: {HOW}")
    return name


def inspect(name: str) -> dict[str, Any]:
    (found,) = json.loads(podman("image", "inspect", name).stdout)
    assert isinstance(found, dict)
    return found
