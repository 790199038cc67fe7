"""The reading half of configuration: a reader that collects every problem, and value parsers.

Only `service.infrastructure.config` uses it; it holds no variable names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar, cast

T = TypeVar("T")

_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


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

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        return self.read(name, default, lambda value: one_of(value.lower(), choices))

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        return self.read(name, default, lambda value: number(int, value, minimum, maximum, "a whole number"))

    def seconds(self, name: str, default: float, minimum: float = 0.0, maximum: float = 3600.0) -> float:
        return self.read(name, default, lambda value: number(float, value, minimum, maximum, "a number of seconds"))

    def file(self, name: str) -> str | None:
        return self.read(name, None, readable_file)


def address(value: str) -> str:
    match = _ADDRESS.fullmatch(value)
    if match is None or int(match["port"]) > 65535:
        raise ConfigError("is not a HOST:PORT address (port 0-65535)")
    return value


def one_of(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"must be one of {', '.join(choices)}")
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
