"""The table of settings: field metadata on the settings dataclasses, and what is derived from it.

A field declared with `setting(...)` names its environment variable, its
default (the field's own), the kind of value it takes (parser and bounds),
whether it is a secret, and what it means. From that one declaration:
- `read_group` reads the field from the environment (`Settings.from_env`);
- `rows` lists it for the reference table in docs/configuration.md (checked
  by tests/unit/infrastructure/test_config_reference.py, rewritten by `make docs`);
- `variables` gives the names the deployment manifests may set.

A field whose kind is None is read by a rule of its own in `settings.py` (the
secrets, the TLS files, the OpenTelemetry switch): its row is still here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from service.infrastructure.config.reader import EnvReader, Kind

G = TypeVar("G")
_KEY = "setting"


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One row of the table (the field's default is the setting's default)."""

    variable: str
    meaning: str
    kind: Kind[Any] | None  # None: read by a rule of its own (settings.py)
    shown_default: str | None = None  # the reference's default, when the field's value does not say it
    secret: bool = False  # never echoed in an error, never logged
    file_variable: str | None = None  # the same, read from a file (a mounted secret)
    also: tuple[str, ...] = ()  # further variables the rule reads, named in the meaning
    values: str = ""  # what a rule of its own accepts (a kind describes itself)

    def describe(self) -> str:
        return self.kind.describe() if self.kind is not None else self.values


def setting(
    variable: str,
    default: Any,
    kind: Kind[Any] | None,
    meaning: str,
    *,
    shown_default: str | None = None,
    secret: bool = False,
    file_variable: str | None = None,
    also: tuple[str, ...] = (),
    values: str = "",
) -> Any:
    """A dataclass field that is a row of the table."""
    row = Setting(variable, meaning, kind, shown_default, secret, file_variable, also, values)
    if default is dataclasses.MISSING:  # a field the group cannot be made without
        return dataclasses.field(metadata={_KEY: row})
    return dataclasses.field(default=default, metadata={_KEY: row})


def row_of(group: type[object], name: str) -> Setting:
    """The table row of field `name` of the settings dataclass `group`."""
    row = next(field for field in dataclasses.fields(group) if field.name == name).metadata.get(_KEY)  # type: ignore[arg-type]
    if not isinstance(row, Setting):
        raise KeyError(f"{group.__name__}.{name} is not a setting")
    return row


def read_group(
    group: type[G], env: EnvReader, given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> G:
    """`group` from the environment: each field with a kind read by it (default: `defaults`, else the field's).

    `given` holds the fields read by rules of their own, and nested groups.
    """
    values = dict(given)
    for field in dataclasses.fields(group):  # type: ignore[arg-type]
        row = field.metadata.get(_KEY)
        if field.name in values or not isinstance(row, Setting) or row.kind is None:
            continue
        default = (defaults or {}).get(field.name, field.default)
        values[field.name] = env.read(row.variable, default, row.kind, show_value=not row.secret)
    return group(**values)


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """A setting as the reference shows it."""

    variable: str
    default: str
    values: str
    secret: bool
    meaning: str


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if value in ("", ()):
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def rows(group: type[object]) -> Iterator[Row]:
    """Every setting of `group` and of the groups nested in it, in declaration order."""
    for field in dataclasses.fields(group):  # type: ignore[arg-type]
        row = field.metadata.get(_KEY)
        if isinstance(row, Setting):
            default = row.shown_default if row.shown_default is not None else _shown(field.default)
            yield Row(row.variable, default, row.describe(), row.secret, row.meaning)
            if row.file_variable is not None:
                yield Row(
                    row.file_variable,
                    "unset",
                    "path of a readable file",
                    False,
                    f"`{row.variable}` read from this file (a mounted secret; a final newline is dropped); "
                    f"not together with `{row.variable}`",
                )
        elif field.metadata.get("group"):
            yield from rows(field.metadata["group"])


def nested(kind: type[object], *, optional: bool = False) -> Any:
    """A field holding a nested settings group (read by `Settings.from_env`; listed by `rows`)."""
    if optional:
        return dataclasses.field(default=None, metadata={"group": kind})
    return dataclasses.field(default_factory=kind, metadata={"group": kind})


def variables(group: type[object]) -> Iterator[str]:
    """Every environment variable the table names (with the *_FILE forms and the extra ones rules read)."""
    for field in dataclasses.fields(group):  # type: ignore[arg-type]
        row = field.metadata.get(_KEY)
        if isinstance(row, Setting):
            yield row.variable
            if row.file_variable is not None:
                yield row.file_variable
            yield from row.also
        elif field.metadata.get("group"):
            yield from variables(field.metadata["group"])
