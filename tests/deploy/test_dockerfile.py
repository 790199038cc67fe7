"""What only the Dockerfile shows; the image as built is checked in tests/image (`make image-test`).

Kept here, because the built image cannot show them:
- the base image the file names by default (the build here substitutes a stand-in for it);
- the uv version of the build stage (uv never reaches the runtime image);
- the order of the build stage's steps, which decides what the layer cache keeps.
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.support import REPO
from tests.support.dockerfile import DOCKERFILE, PYTHON_TAG, UV_PIN, Stage, global_args, parse


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE)


@pytest.fixture(scope="module")
def build(stages: list[Stage]) -> Stage:
    sources = {instruction.flags.get("from") for instruction in stages[-1].all("COPY")}
    assert len(sources) == 1, f"the runtime stage copies from {sources}"
    (name,) = sources
    return next(stage for stage in stages if stage.name == name)


def test_every_stage_is_the_same_base_by_default_the_pinned_slim_python_3_11(stages: list[Stage]) -> None:
    # One base: the virtual environment's interpreter path exists in both stages.
    text = DOCKERFILE.read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert set(froms) == {"${PYTHON_IMAGE}"}, froms
    (base,) = {stage.base for stage in stages}
    assert base == global_args()["PYTHON_IMAGE"]
    match = PYTHON_TAG.match(base)
    assert match, f"{base} is not python:3.11.Z-slim-bookworm"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'requires-python = ">={match["major"]}.{match["minor"]},' in pyproject


def test_uv_is_the_makefiles_pinned_version_checked_by_hash(stages: list[Stage]) -> None:
    """The build stage installs uv from uv-build-requirements.txt with --require-hashes: the version and the
    wheels are both pinned (before: `pip install uv==X`, any file PyPI served under that version)."""
    runs = [run.args for stage in stages for run in stage.all("RUN") if "pip install" in run.args]
    assert runs == ["--require-hashes -r /tmp/uv-build-requirements.txt" in run and run for run in runs]
    requirements = (REPO / "uv-build-requirements.txt").read_text(encoding="utf-8")
    pins = {pin["version"] for pin in UV_PIN.finditer(requirements)}
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert match
    assert pins == {match[1]}
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", requirements)) >= 2  # x86_64 and aarch64 wheels


def test_dependencies_come_from_the_lock_before_the_code(build: Stage) -> None:
    steps = [(instruction.keyword, instruction.args) for instruction in build.instructions]
    copies = [args for keyword, args in steps if keyword == "COPY" and "uv-build-requirements" not in args]
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
