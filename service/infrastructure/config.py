"""Typed settings, read from the environment and validated at start-up.

Every variable is documented in the README's configuration table. A bad value
raises ConfigError, which `python -m service` reports in one line before
exiting with status 2.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_GRPC_ADDRESS = "0.0.0.0:50051"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
# Signs page tokens. Set TODO_PAGE_TOKEN_SECRET in production so that clients
# cannot forge tokens; every replica must share the same value.
DEFAULT_PAGE_TOKEN_SECRET = "todo-service-default-page-token-secret"  # noqa: S105 (documented default)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    grpc_address: str = DEFAULT_GRPC_ADDRESS
    log_level: str = "INFO"
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    page_token_secret: str = DEFAULT_PAGE_TOKEN_SECRET

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            grpc_address=_address(environ, "TODO_GRPC_ADDRESS", DEFAULT_GRPC_ADDRESS),
            log_level=_choice(environ, "TODO_LOG_LEVEL", "INFO", LOG_LEVELS),
            shutdown_grace_seconds=_seconds(
                environ, "TODO_SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE_SECONDS
            ),
            page_token_secret=_non_empty(environ, "TODO_PAGE_TOKEN_SECRET", DEFAULT_PAGE_TOKEN_SECRET),
        )

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def _raw(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _address(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(environ, name) or default
    match = _ADDRESS.fullmatch(value)
    if match is None or int(match["port"]) > 65535:
        raise ConfigError(f"{name}={value!r} is not a HOST:PORT address (port 0-65535)")
    return value


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (_raw(environ, name) or default).upper()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number of seconds") from None
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"{name}={value!r} must be between 0 and 3600 seconds")
    return seconds


def _non_empty(environ: Mapping[str, str], name: str, default: str) -> str:
    return _raw(environ, name) or default
