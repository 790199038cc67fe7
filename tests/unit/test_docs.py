"""The documentation holds together: a short README, every page linked, every link resolving, every example run.

- README.md stays short (at most 200 lines) and links every page under docs/.
- Every relative link of every page resolves: the file exists, and so does the
  heading an anchor names (GitHub's anchors). Web addresses are not fetched.
- Every code block of README.md and docs/ says just above it which test runs
  it (`<!-- checked: <test file> ... -->`, and that test file reads the page)
  or why none can (`<!-- not run: ... -->`).
- The README's map of the code names paths that exist; the Go snippet of
  docs/clients.md is part of the example program the Go client test runs.
"""

from __future__ import annotations

import re

import pytest

from tests.support import REPO
from tests.support.docs import DOCS, PAGES, anchors, block_after, blocks, links, page

README_MAX_LINES = 200
EXAMPLE_PAGES = ["README.md", *sorted(str(path.relative_to(REPO)) for path in DOCS.glob("*.md"))]


def test_the_readme_is_short_and_maps_every_page() -> None:
    readme = page("README.md")
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = set(links(readme))
    for path in DOCS.glob("*.md"):
        assert f"docs/{path.name}" in linked, f"README.md does not link docs/{path.name}"
    for other in ("CHANGELOG.md", "benchmarks/README.md", "deploy/README.md"):
        assert other in linked, f"README.md does not link {other}"


@pytest.mark.parametrize("name", PAGES)
def test_every_link_resolves(name: str) -> None:
    here = (REPO / name).parent
    broken = []
    for target in links(page(name)):
        path_part, _, fragment = target.partition("#")
        path = (here / path_part).resolve() if path_part else REPO / name
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with that anchor in {path.relative_to(REPO)}")
    assert broken == [], f"{name}: {broken}"


@pytest.mark.parametrize("name", EXAMPLE_PAGES)
def test_every_code_block_says_which_test_runs_it_or_why_none_can(name: str) -> None:
    text = page(name)
    for block in blocks(text):
        where = f"{name}:{block.line}"
        assert block.note_kind in {"checked", "not run"}, f"{where}: no <!-- checked: ... --> or <!-- not run: ... -->"
        if block.note_kind == "checked":
            match = re.match(r"(tests/\S+\.py)", block.note)
            assert match, f"{where}: a checked block names its test file first"
            test = REPO / match[1]
            assert test.is_file(), f"{where}: {match[1]} does not exist"
            reads = test.read_text(encoding="utf-8")
            assert f'"{name}"' in reads, f"{where}: {match[1]} does not read {name}"


def test_the_map_of_the_code_names_existing_paths() -> None:
    layout = block_after(page("README.md"), "## Where the code is")
    parents: list[str] = []
    named = 0
    for line in layout.splitlines():
        match = re.match(r"^( *)([\w./-]+/|[\w.-]+\.\w+)\s", line + " ")
        if not match or not line.strip():
            continue
        depth = len(match[1]) // 2
        parents = [*parents[:depth], match[2]]
        path = REPO / "".join(parents)
        assert path.exists(), f"README's map names {''.join(parents)}, which does not exist"
        named += 1
    assert named >= 30


def test_the_go_snippet_is_part_of_the_example_program() -> None:
    snippet = block_after(page("docs/clients.md"), "Decoding a reason", "go")
    program = (REPO / "clients" / "go" / "cmd" / "todo-example" / "main.go").read_text(encoding="utf-8")
    assert snippet in program
