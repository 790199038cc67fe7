"""Typed settings, read from the environment and validated at start-up.

Every variable is documented in the README's configuration table. A bad value
raises ConfigError, which `python -m service` reports in one line before
exiting with status 2.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import parse_uri

from service.infrastructure.auth import TokenFileError, token_digests
from service.infrastructure.persistence.mongo.client import Driver, MongoSettings

DEFAULT_GRPC_ADDRESS = "0.0.0.0:50051"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
# Signs page tokens. Set TODO_PAGE_TOKEN_SECRET in production so that clients
# cannot forge tokens; every replica must share the same value.
DEFAULT_PAGE_TOKEN_SECRET = "todo-service-default-page-token-secret"  # noqa: S105 (documented default)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "console")
EVENT_LOOPS = ("asyncio", "uvloop")
MIB = 1024 * 1024
MONGODB_DRIVERS = ("motor", "pymongo")
DEFAULT_HEALTH_INTERVAL_SECONDS = 2.0

_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """gRPC server knobs (see the README's configuration table)."""

    max_receive_message_bytes: int = 4 * MIB
    max_send_message_bytes: int = 4 * MIB
    max_concurrent_rpcs: int = 0  # 0: no limit
    keepalive_time_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    max_connection_age_seconds: float = 300.0  # 0: connections live forever
    max_connection_age_grace_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Server certificate and key (PEM files); with a client CA, clients must present a certificate it signed."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


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
    log_format: str = "json"
    metrics_address: str = ""
    shutdown_drain_seconds: float = 0.0
    server: ServerSettings = field(default_factory=ServerSettings)
    workers: int = 1
    tls: TlsSettings | None = None
    auth_tokens_file: str | None = None
    reflection: bool = True
    event_loop: str = "uvloop"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        metrics = _raw(environ, "TODO_METRICS_ADDRESS")
        workers = _integer(environ, "TODO_WORKERS", 1, minimum=1, maximum=64)
        grpc_address = _address(environ, "TODO_GRPC_ADDRESS", DEFAULT_GRPC_ADDRESS)
        if workers > 1 and grpc_address.endswith(":0"):
            raise ConfigError("TODO_WORKERS > 1 needs a fixed port in TODO_GRPC_ADDRESS (the workers share it)")
        if workers > 1 and _raw(environ, "TODO_MONGODB_URI") is None:
            raise ConfigError("TODO_WORKERS > 1 needs TODO_MONGODB_URI: each worker would keep its own in-memory store")
        auth_tokens_file = _readable_file(environ, "TODO_AUTH_TOKENS_FILE")
        if auth_tokens_file is not None:
            try:
                token_digests(auth_tokens_file)
            except TokenFileError as error:
                raise ConfigError(f"TODO_AUTH_TOKENS_FILE: {error}") from None
        return cls(
            # uvloop measured 8-19% faster here (benchmarks/results); asyncio stays selectable.
            event_loop=_choice(environ, "TODO_EVENT_LOOP", "uvloop", EVENT_LOOPS, upper=False),
            tls=_tls(environ),
            auth_tokens_file=auth_tokens_file,
            # Reflection describes the whole API to anyone who can connect:
            # on by default without authentication, off by default with it.
            reflection=_boolean(environ, "TODO_REFLECTION", default=auth_tokens_file is None),
            log_format=_choice(environ, "TODO_LOG_FORMAT", "json", LOG_FORMATS, upper=False),
            metrics_address=_address(environ, "TODO_METRICS_ADDRESS", "") if metrics else "",
            shutdown_drain_seconds=_seconds(environ, "TODO_SHUTDOWN_DRAIN_SECONDS", 0.0),
            server=ServerSettings(
                max_receive_message_bytes=_integer(
                    environ, "TODO_MAX_RECEIVE_MESSAGE_BYTES", 4 * MIB, minimum=1024, maximum=1024 * MIB
                ),
                max_send_message_bytes=_integer(
                    environ, "TODO_MAX_SEND_MESSAGE_BYTES", 4 * MIB, minimum=1024, maximum=1024 * MIB
                ),
                max_concurrent_rpcs=_integer(environ, "TODO_MAX_CONCURRENT_RPCS", 0, minimum=0, maximum=1_000_000),
                keepalive_time_seconds=_seconds(environ, "TODO_KEEPALIVE_TIME_SECONDS", 60.0, minimum=1.0),
                keepalive_timeout_seconds=_seconds(environ, "TODO_KEEPALIVE_TIMEOUT_SECONDS", 20.0, minimum=1.0),
                max_connection_age_seconds=_seconds(environ, "TODO_MAX_CONNECTION_AGE_SECONDS", 300.0, maximum=86400),
                max_connection_age_grace_seconds=_seconds(
                    environ, "TODO_MAX_CONNECTION_AGE_GRACE_SECONDS", 30.0, maximum=86400
                ),
            ),
            workers=workers,
            mongodb=_mongodb(environ),
            health_interval_seconds=_seconds(
                environ, "TODO_HEALTH_CHECK_INTERVAL_SECONDS", DEFAULT_HEALTH_INTERVAL_SECONDS, minimum=0.05
            ),
            grpc_address=grpc_address,
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


def _integer(environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if not minimum <= number <= maximum:
        raise ConfigError(f"{name}={value!r} must be between {minimum} and {maximum}")
    return number


def _seconds(
    environ: Mapping[str, str], name: str, default: float, minimum: float = 0.0, maximum: float = 3600.0
) -> float:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number of seconds") from None
    if not minimum <= seconds <= maximum:
        raise ConfigError(f"{name}={value!r} must be between {minimum:g} and {maximum:g} seconds")
    return seconds


def _boolean(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(environ, name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} must be true or false")


def _readable_file(environ: Mapping[str, str], name: str) -> str | None:
    path = _raw(environ, name)
    if path is None:
        return None
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ConfigError(f"{name}={path!r} cannot be read: {error.strerror}") from None
    return path


def _tls(environ: Mapping[str, str]) -> TlsSettings | None:
    cert = _readable_file(environ, "TODO_TLS_CERT_FILE")
    key = _readable_file(environ, "TODO_TLS_KEY_FILE")
    client_ca = _readable_file(environ, "TODO_TLS_CLIENT_CA_FILE")
    if cert is None and key is None:
        if client_ca is not None:
            raise ConfigError("TODO_TLS_CLIENT_CA_FILE needs TODO_TLS_CERT_FILE and TODO_TLS_KEY_FILE")
        return None
    if cert is None or key is None:
        raise ConfigError("TODO_TLS_CERT_FILE and TODO_TLS_KEY_FILE go together: set both or neither")
    return TlsSettings(cert_file=cert, key_file=key, client_ca_file=client_ca)


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
