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
from typing import cast
from urllib.parse import urlsplit

from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import parse_uri

from service.infrastructure.persistence.mongo.client import Driver, MongoSettings

DEFAULT_GRPC_ADDRESS = "0.0.0.0:50051"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
# Signs page tokens. Set TODO_PAGE_TOKEN_SECRET in production so that clients
# cannot forge tokens; every replica must share the same value.
DEFAULT_PAGE_TOKEN_SECRET = "todo-service-default-page-token-secret"  # noqa: S105 (documented default)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MONGODB_DRIVERS = ("motor", "pymongo")
DEFAULT_HEALTH_INTERVAL_SECONDS = 2.0

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
    # None: the embedded in-memory store.
    mongodb: MongoSettings | None = None
    health_interval_seconds: float = DEFAULT_HEALTH_INTERVAL_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            mongodb=_mongodb(environ),
            health_interval_seconds=_seconds(
                environ, "TODO_HEALTH_CHECK_INTERVAL_SECONDS", DEFAULT_HEALTH_INTERVAL_SECONDS, minimum=0.05
            ),
            grpc_address=_address(environ, "TODO_GRPC_ADDRESS", DEFAULT_GRPC_ADDRESS),
            log_level=_choice(environ, "TODO_LOG_LEVEL", "INFO", LOG_LEVELS),
            shutdown_grace_seconds=_seconds(environ, "TODO_SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE_SECONDS),
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


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...], upper: bool = True) -> str:
    value = _raw(environ, name) or default
    value = value.upper() if upper else value.lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _seconds(environ: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number of seconds") from None
    if not minimum <= seconds <= 3600:
        raise ConfigError(f"{name}={value!r} must be between {minimum:g} and 3600 seconds")
    return seconds


def _mongodb(environ: Mapping[str, str]) -> MongoSettings | None:
    uri = _raw(environ, "TODO_MONGODB_URI")
    if uri is None:
        return None
    _check_uri(uri)
    database = _raw(environ, "TODO_MONGODB_DATABASE") or "todo"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", database):
        raise ConfigError(f"TODO_MONGODB_DATABASE={database!r} must be 1-63 characters of [A-Za-z0-9_-]")
    return MongoSettings(
        uri=uri,
        database=database,
        driver=cast(Driver, _choice(environ, "TODO_MONGODB_DRIVER", "motor", MONGODB_DRIVERS, upper=False)),
        operation_timeout_seconds=_seconds(environ, "TODO_MONGODB_TIMEOUT_SECONDS", 5.0, minimum=0.01),
        server_selection_timeout_seconds=_seconds(
            environ, "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS", 2.0, minimum=0.01
        ),
        connect_timeout_seconds=_seconds(environ, "TODO_MONGODB_CONNECT_TIMEOUT_SECONDS", 2.0, minimum=0.01),
    )


def _check_uri(uri: str) -> None:
    """Reject a malformed URI at start-up, without any network access.

    The message never repeats the URI: it may hold a password.
    """
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme == "mongodb+srv":
        # Full parsing would look the SRV record up; check the shape only.
        if not urlsplit(uri).hostname:
            raise ConfigError("TODO_MONGODB_URI is not a valid mongodb+srv:// URI (no host)")
        return
    try:
        parse_uri(uri)
    except (InvalidURI, ConfigurationError, ValueError) as error:
        raise ConfigError(f"TODO_MONGODB_URI is not a valid MongoDB URI: {_without_uri(str(error), uri)}") from None


def _without_uri(message: str, uri: str) -> str:
    return message.replace(uri, "<uri>")


def _non_empty(environ: Mapping[str, str], name: str, default: str) -> str:
    return _raw(environ, name) or default
