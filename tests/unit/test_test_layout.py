"""The test suites share helpers through `tests.support` only.

A test module or a conftest that imports another test module or conftest
runs that module's tests or fixtures twice and ties suites together; what two
suites share belongs in tests/support/, which imports no test module either.
"""

from __future__ import annotations

import ast

import pytest

from tests.support import REPO

TESTS = REPO / "tests"
MODULES = sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def imported(path: str) -> set[str]:
    """The modules under `tests` that a file imports (at any depth: function-level imports count too)."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.split(".")[0] == "tests"}


@pytest.mark.parametrize("path", [str(path.relative_to(REPO)) for path in MODULES])
def test_only_tests_support_is_imported(path: str) -> None:
    outside = {name for name in imported(path) if name != "tests.support" and not name.startswith("tests.support.")}
    assert outside == set(), f"{path} imports {sorted(outside)}: move what is shared into tests/support/"


def test_the_helpers_live_in_one_package() -> None:
    helpers = [
        str(path.relative_to(REPO))
        for path in MODULES
        if path.parent != TESTS / "support"
        and path.name != "__init__.py"
        and not path.name.startswith("test_")
        and path.name != "conftest.py"
    ]
    assert helpers == [], f"helper modules outside tests/support/: {helpers}"
