"""The README and the pages under docs/, as the tests read them: code blocks, tables, links, generated parts.

- `page(name)`: a page's text (`"README.md"`, `"docs/api.md"`, ...);
- `blocks(text)`: its fenced code blocks, each with the `<!-- checked: ... -->`
  or `<!-- not run: ... -->` note written just above it;
- `section(text, heading)`, `table_rows(text)`: a part of a page and the rows of its tables;
- `links(text)`, `anchors(text)`: relative links, and the anchors GitHub makes of headings;
- `settings_table()`: the reference table of docs/configuration.md, rendered from
  the table of settings; `python -m tests.support.docs` (`make docs`) rewrites it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from service.infrastructure.config import Settings, rows
from tests.support import REPO

DOCS = REPO / "docs"
# Every page of the documentation whose links are checked.
PAGES = [
    "README.md",
    "CHANGELOG.md",
    *sorted(str(path.relative_to(REPO)) for path in DOCS.glob("*.md")),
    "benchmarks/README.md",
    "deploy/README.md",
    "clients/python/README.md",
    "tools/ferretdb/README.md",
    "tools/grpcui/README.md",
]
SETTINGS_START = "<!-- settings-table:start"
SETTINGS_END = "<!-- settings-table:end -->"
_FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.M | re.S)
_NOTE = re.compile(r"<!-- (?P<kind>checked|not run): (?P<text>.*?) -->\s*$", re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def page(name: str) -> str:
    return (REPO / name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, its text, and the note above it ("" when there is none)."""

    lang: str
    body: str
    note_kind: str
    note: str
    line: int


def blocks(text: str) -> list[Block]:
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n")
        last = before.rsplit("\n", 1)[-1]
        note = _NOTE.search(last)
        found.append(
            Block(
                lang=match["lang"],
                body=match["body"],
                note_kind=note["kind"] if note else "",
                note=note["text"] if note else "",
                line=text.count("\n", 0, match.start()) + 1,
            )
        )
    return found


def block_after(text: str, marker: str, lang: str = "") -> str:
    """The first code block (of `lang`, when given) after the first occurrence of `marker`."""
    rest = text[text.index(marker) :]
    for block in blocks(rest):
        if not lang or block.lang == lang:
            return block.body
    raise AssertionError(f"no {lang or 'code'} block after {marker!r}")


def section(text: str, heading: str) -> str:
    """The text under `heading` (a whole heading line, e.g. "## Errors"), up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + 1
    following = re.compile(rf"^#{{1,{len(level)}}} ", re.M)
    end = following.search(text, start + len(heading) + 1)
    return text[start : end.start() if end else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row in `text`, header rows included (separator rows left out)."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
    ]


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    outside_code = _FENCE.sub("", text)
    return {anchor(match[1]) for match in re.finditer(r"^#{1,6} (.+)$", outside_code, re.M)}


def links(text: str) -> list[str]:
    """The targets of the page's links that stay in the repository (web addresses left out)."""
    outside_code = _CODE_SPAN.sub("", _FENCE.sub("", text))
    return [match["target"] for match in _LINK.finditer(outside_code) if not re.match(r"[a-z]+:", match["target"])]


def settings_table() -> str:
    """docs/configuration.md's reference table, from the table of settings (service/infrastructure/config)."""
    lines = ["| variable | default | values | meaning |", "| --- | --- | --- | --- |"]
    for row in rows(Settings):
        values = row.values + ("; a secret: never logged or echoed" if row.secret else "")
        lines.append(f"| `{row.variable}` | {row.default} | {values} | {row.meaning} |")
    return "\n".join(lines)


def with_settings_table(text: str) -> str:
    """`text` (docs/configuration.md) with its generated table replaced by the current one."""
    start = text.index(SETTINGS_START)
    start = text.index("-->", start) + len("-->\n")
    end = text.index(SETTINGS_END)
    return text[:start] + settings_table() + "\n" + text[end:]


def main() -> int:
    """`make docs`: rewrite the generated parts of the pages."""
    path = DOCS / "configuration.md"
    before = path.read_text(encoding="utf-8")
    after = with_settings_table(before)
    if after != before:
        path.write_text(after, encoding="utf-8")
        print(f"{path.relative_to(REPO)}: the settings table is rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
