"""The reading half of configuration: a reader that collects every problem, and the kinds of values.

A kind parses one variable's text (raising ConfigError with what is wrong)
and says in words what it accepts, for the settings reference
(docs/configuration.md). No variable names here: they are in the table
(`settings.py`, read through `table.read_group`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


class Kind(Protocol[T_co]):
    """What one variable holds: its parser, and its description for the reference."""

    def __call__(self, value: str) -> T_co: ...

    def describe(self) -> str: ...


class EnvReader:
    """Reads one environment and collects every problem, so one start reports them all.

    A parser raises ConfigError with what is wrong; `read` names the variable
    (and its value, unless it may hold a secret) and keeps the default.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._errors: list[str] = []

    def raw(self, name: str) -> str | None:
        """The trimmed value; None when unset or blank."""
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def read(self, name: str, default: T, parse: Callable[[str], T], *, show_value: bool = True) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ConfigError as error:
            self.fail(f"{name}={value!r} {error}" if show_value else f"{name} {error}")
            return default

    def fail(self, message: str) -> None:
        self._errors.append(message)

    def finish(self) -> None:
        if self._errors:
            raise ConfigError("; ".join(self._errors))


@dataclasses.dataclass(frozen=True, slots=True)
class Whole:
    """A whole number between `minimum` and `maximum`."""

    minimum: int
    maximum: int

    def __call__(self, value: str) -> int:
        return number(int, value, self.minimum, self.maximum, "a whole number")

    def describe(self) -> str:
        return f"whole number, {self.minimum:,} to {self.maximum:,}"


@dataclasses.dataclass(frozen=True, slots=True)
class Seconds:
    """A number of seconds between `minimum` and `maximum`."""

    minimum: float = 0.0
    maximum: float = 3600.0

    def __call__(self, value: str) -> float:
        return number(float, value, self.minimum, self.maximum, "a number of seconds")

    def describe(self) -> str:
        return f"seconds, {self.minimum:g} to {self.maximum:g}"


@dataclasses.dataclass(frozen=True, slots=True)
class OneOf:
    """One of `choices`, case-insensitive (folded to upper case with `upper`, else to lower case)."""

    choices: tuple[str, ...]
    upper: bool = False

    def __call__(self, value: str) -> str:
        folded = value.upper() if self.upper else value.lower()
        if folded not in self.choices:
            raise ConfigError(f"must be one of {', '.join(self.choices)}")
        return folded

    def describe(self) -> str:
        return ", ".join(f"`{choice}`" for choice in self.choices)


@dataclasses.dataclass(frozen=True, slots=True)
class Described:
    """A parser with its description (addresses, switches, files, rules of their own)."""

    parse: Callable[[str], Any]
    description: str

    def __call__(self, value: str) -> Any:
        return self.parse(value)

    def describe(self) -> str:
        return self.description


def address(value: str) -> str:
    match = _ADDRESS.fullmatch(value)
    if match is None or int(match["port"]) > 65535:
        raise ConfigError("is not a HOST:PORT address (port 0-65535)")
    return value


def number(kind: Callable[[str], T], value: str, minimum: float, maximum: float, what: str) -> T:
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"is not {what}") from None
    if not minimum <= cast(float, number) <= maximum:
        if kind is int:
            raise ConfigError(f"must be between {minimum} and {maximum}")
        raise ConfigError(f"must be between {minimum:g} and {maximum:g} seconds")
    return number


def boolean(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError("must be true or false")


def readable_file(path: str) -> str:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ConfigError(f"cannot be read: {error.strerror}") from None
    return path


ADDRESS = Described(address, "`HOST:PORT` (port 0: any free port)")
BOOLEAN = Described(boolean, "`true` or `false`")
READABLE_FILE = Described(readable_file, "path of a readable file")
