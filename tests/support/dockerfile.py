"""Read the Dockerfile's stages and instructions (the parts this project uses).

Only for what the built image cannot show: the base image the file names by
default (`make image-test` builds on a stand-in), the build stage's steps and
their order, and the values the compose file and the Kubernetes manifests must
agree with. The image itself is built and checked in tests/image.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import REPO

DOCKERFILE = REPO / "Dockerfile"

# `uv==VERSION` in a RUN line: the uv the image installs.
UV_PIN = re.compile(r"(?:^|\s)uv==(?P<version>[0-9][^\s;]*)")
# The base image: the official slim Python on Debian bookworm, pinned to a release (and maybe a digest).
PYTHON_TAG = re.compile(r"^python:(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)-slim-bookworm(@sha256:[0-9a-f]{64})?$")
_DIRECTIVE = re.compile(r"#\s*[a-z]+\s*=")
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)\}|(?P<bare>\w+))")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    flags: Mapping[str, str]  # leading --name=value options (a repeated name keeps the last value)
    args: str  # the rest, verbatim
    line: int  # where the instruction starts

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        if not self.args.startswith("["):
            return None
        value = json.loads(self.args)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"Dockerfile line {self.line}: {self.keyword} is not a JSON array of strings")
        return value

    def words(self) -> list[str]:
        return shlex.split(self.args)

    def env_pairs(self) -> list[tuple[str, str]]:
        """ENV KEY=VALUE ... (or the legacy ENV KEY VALUE), values unexpanded."""
        assert self.keyword == "ENV", self
        words = self.words()
        if words and "=" not in words[0]:
            return [(words[0], self.args.split(None, 1)[1].strip())]
        return [(name, value) for name, _, value in (word.partition("=") for word in words)]

    def healthcheck_command(self) -> tuple[dict[str, str], list[str]]:
        """HEALTHCHECK [OPTIONS] CMD [...]: the options and the exec-form command."""
        assert self.keyword == "HEALTHCHECK", self
        head, separator, command = self.args.partition("CMD")
        if not separator:
            raise ValueError(f"Dockerfile line {self.line}: HEALTHCHECK without CMD")
        options = dict(_flag(word) for word in head.split())
        parsed = Instruction("CMD", {}, command.strip(), self.line).exec_form()
        if parsed is None:
            raise ValueError(f"Dockerfile line {self.line}: HEALTHCHECK CMD is not in exec form")
        return options, parsed


@dataclass
class Stage:
    base: str  # the FROM image with the global ARG defaults expanded
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """The environment after every ENV of the stage, `$NAME` expanded as Docker does."""
        env = dict(inherited)
        for instruction in self.all("ENV"):
            # Docker expands every value of one ENV against the environment before it.
            before = dict(env)
            for name, value in instruction.env_pairs():
                env[name] = expand(value, before)
        return env


def expand(value: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda match: env.get(match["braced"] or match["bare"], ""), value)


def _flag(word: str) -> tuple[str, str]:
    name, _, value = word.removeprefix("--").partition("=")
    return name, value


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Instructions joined across `\\` continuations, without comments and parser directives."""
    lines = text.splitlines()
    index = 0
    in_header = True
    while index < len(lines):
        raw = lines[index]
        stripped = raw.strip()
        index += 1
        if in_header and _DIRECTIVE.match(stripped):
            continue
        in_header = False
        if not stripped or stripped.startswith("#"):
            continue
        start = index
        parts = []
        while stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            # Comment and empty lines inside a continued instruction are dropped.
            while index < len(lines) and (not lines[index].strip() or lines[index].strip().startswith("#")):
                index += 1
            stripped = lines[index].strip() if index < len(lines) else ""
            index += 1
        parts.append(stripped)
        yield start, " ".join(part for part in parts if part)


def global_args(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults (what FROM lines may use)."""
    found: dict[str, str] = {}
    for _, text in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = text.partition(" ")
        if keyword.upper() == "FROM":
            break
        if keyword.upper() == "ARG":
            name, _, default = rest.strip().partition("=")
            found[name] = default
    return found


def parse(path: Path = DOCKERFILE) -> list[Stage]:
    stages: list[Stage] = []
    arguments = global_args(path)
    for line, text in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        rest = rest.strip()
        # HEALTHCHECK's options come before CMD and are parsed by healthcheck_command().
        while keyword != "HEALTHCHECK" and rest.startswith("--"):
            word, _, rest = rest.partition(" ")
            name, value = _flag(word)
            flags[name] = value
            rest = rest.strip()
        instruction = Instruction(keyword, flags, rest, line)
        if keyword == "FROM":
            words = rest.split()
            stage_name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=expand(words[0], arguments), name=stage_name))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"Dockerfile line {line}: {keyword} before the first FROM")
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise ValueError(f"{path}: no FROM")
    return stages
