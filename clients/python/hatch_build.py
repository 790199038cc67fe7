"""Puts the generated `todo` package into the wheel (never into an editable install).

The generated code has one home, the repository's generated/ (scripts/generate.sh).
A wheel built from the source tree takes it from there; a wheel built from the
sdist takes the copy the sdist carries (its `todo/`). An editable install gets
neither: its .pth file points at generated/ itself (`dev-mode-dirs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        for candidate in (root / ".." / ".." / "generated" / "todo", root / "todo"):
            if (candidate / "v1" / "todo_service_pb2.py").is_file():
                build_data["force_include"][str(candidate.resolve())] = "todo"
                # The generated package is typed (mypy-protobuf .pyi files): clients/python/py.typed
                # tells type checkers so, as todo/py.typed (generated/ itself holds generated files only).
                build_data["force_include"][str(root / "py.typed")] = "todo/py.typed"
                return
        raise RuntimeError(f"no generated todo.v1 package next to {root}: run `make generate` in the repository")
