"""Typed settings, read from the environment and validated at start-up.

`Settings.from_env` is the one place the process reads its environment (the
TODO_* variables and the OTEL_* tracing switch). It checks every variable and
reports every bad one at once, in one ConfigError, which `python -m service`
prints in one line before exiting with status 2. Every variable is documented
in the README's configuration table. This module is the bottom of the
infrastructure: it imports no adapter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast
from urllib.parse import unquote, urlsplit

from service.infrastructure.config_reader import ConfigError as ConfigError  # noqa: PLC0414 (re-exported for callers)
from service.infrastructure.config_reader import EnvReader, address, boolean, one_of
from service.infrastructure.config_secrets import BUILT_IN_PAGE_TOKEN_SECRET as BUILT_IN_PAGE_TOKEN_SECRET  # noqa: PLC0414
from service.infrastructure.config_secrets import TlsSettings as TlsSettings  # noqa: PLC0414 (re-exported)
from service.infrastructure.config_secrets import page_token_secret, secret_or_file, tls_settings

DEFAULT_GRPC_ADDRESS = "0.0.0.0:50051"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
DEFAULT_DATABASE = "todo"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "console")
EVENT_LOOPS = ("asyncio", "uvloop")
MIB = 1024 * 1024
MONGODB_DRIVERS = ("motor", "pymongo")
TRACE_EXPORTERS = ("otlp", "console", "none")
DEFAULT_HEALTH_INTERVAL_SECONDS = 2.0
DEFAULT_AUTH_TOKENS_RELOAD_SECONDS = 5.0
DEFAULT_MAX_CONCURRENT_STREAMS = 16

Driver = Literal["motor", "pymongo"]

_DATABASE = re.compile(r"[A-Za-z0-9_-]{1,63}")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """gRPC server knobs (see the README's configuration table)."""

    max_receive_message_bytes: int = 4 * MIB
    max_send_message_bytes: int = 4 * MIB
    # todo.v1.TodoService calls in progress at once (health is never counted); 0: no limit.
    max_concurrent_rpcs: int = 128
    # Outbound calls of an RPC without a deadline are bounded as if it had this one.
    max_rpc_seconds: float = 30.0
    keepalive_time_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    max_connection_age_seconds: float = 300.0  # 0: connections live forever
    max_connection_age_grace_seconds: float = 30.0
    # HTTP/2 streams (calls) open at once on one connection; more wait in the client (see the README's Overload).
    max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS
    # gRPC core refuses streams over that limit with RST_STREAM(REFUSED_STREAM), counting streams whose
    # calls are still being torn down: the cheap refusal, and the guard against reset floods (CVE-2023-44487).
    overload_protection: bool = True
    # grpc.health.v1 Watch streams open at once (all connections); more: RESOURCE_EXHAUSTED.
    max_health_watches: int = 1000


@dataclass(frozen=True, slots=True)
class MongoSettings:
    """Where the MongoDB store lives and how long its calls may take."""

    uri: str
    database: str = DEFAULT_DATABASE
    driver: Driver = "motor"
    operation_timeout_seconds: float = 5.0
    server_selection_timeout_seconds: float = 2.0
    connect_timeout_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OpenTelemetry traces, from the standard OTEL_* variables; no exporter: tracing off.

    Only whether and where spans go is read here; the OTLP exporter's transport
    options (OTEL_EXPORTER_OTLP_HEADERS, _CERTIFICATE, _TIMEOUT, ...) and
    OTEL_RESOURCE_ATTRIBUTES are applied by the OpenTelemetry SDK itself.
    """

    exporters: tuple[str, ...] = ()  # "otlp", "console"
    service_name: str = "todo-service"
    otlp_endpoint: str | None = None  # None: the SDK's default


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    grpc_address: str = DEFAULT_GRPC_ADDRESS
    log_level: str = "INFO"
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    # None: a random secret made at start-up (from_env allows it with the in-memory store only).
    page_token_secret: str | None = None
    # None: the embedded in-memory store.
    mongodb: MongoSettings | None = None
    # A second, plaintext listener serving grpc.health.v1 only (probes); "": none.
    health_address: str = ""
    health_interval_seconds: float = DEFAULT_HEALTH_INTERVAL_SECONDS
    log_format: str = "json"
    access_log: bool = True  # one line per RPC (logger service.access, INFO)
    metrics_address: str = ""
    shutdown_drain_seconds: float = 0.0
    server: ServerSettings = field(default_factory=ServerSettings)
    workers: int = 1
    tls: TlsSettings | None = None
    auth_tokens_file: str | None = None
    auth_tokens_reload_seconds: float = DEFAULT_AUTH_TOKENS_RELOAD_SECONDS
    reflection: bool = True
    event_loop: str = "uvloop"
    tracing: TracingSettings = field(default_factory=TracingSettings)
    # Never read from the environment: the supervisor sets it for its workers
    # (prometheus_client's multiprocess mode, see observability/metrics.py).
    metrics_multiprocess_dir: str | None = None
    # What start-up should log at WARNING (an expired certificate, a key others can read).
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = EnvReader(environ)
        workers = env.integer("TODO_WORKERS", 1, minimum=1, maximum=64)
        grpc_address = env.read("TODO_GRPC_ADDRESS", DEFAULT_GRPC_ADDRESS, address)
        if workers > 1 and grpc_address.endswith(":0"):
            env.fail("TODO_WORKERS > 1 needs a fixed port in TODO_GRPC_ADDRESS (the workers share it)")
        health_address = env.read("TODO_HEALTH_ADDRESS", "", address)
        if workers > 1 and health_address.endswith(":0"):
            env.fail("TODO_WORKERS > 1 needs a fixed port in TODO_HEALTH_ADDRESS (the workers share it)")
        mongodb = _mongodb(env)
        if workers > 1 and mongodb is None:
            # Also what keeps the random page-token secret to one process: it is never shared.
            env.fail("TODO_WORKERS > 1 needs TODO_MONGODB_URI: each worker would keep its own in-memory store")
        auth_tokens_file = env.file("TODO_AUTH_TOKENS_FILE")
        warnings: list[str] = []
        settings = cls(
            # uvloop measured 8-19% faster here (benchmarks/results); asyncio stays selectable.
            event_loop=env.choice("TODO_EVENT_LOOP", "uvloop", EVENT_LOOPS),
            tls=tls_settings(env, warnings),
            auth_tokens_file=auth_tokens_file,
            auth_tokens_reload_seconds=env.seconds(
                "TODO_AUTH_TOKENS_RELOAD_SECONDS", DEFAULT_AUTH_TOKENS_RELOAD_SECONDS, minimum=0.05
            ),
            # Reflection describes the whole API to anyone who can connect:
            # on by default without authentication, off by default with it.
            reflection=env.read("TODO_REFLECTION", auth_tokens_file is None, boolean),
            log_format=env.choice("TODO_LOG_FORMAT", "json", LOG_FORMATS),
            access_log=env.read("TODO_ACCESS_LOG", True, boolean),
            metrics_address=env.read("TODO_METRICS_ADDRESS", "", address),
            shutdown_drain_seconds=env.seconds("TODO_SHUTDOWN_DRAIN_SECONDS", 0.0),
            server=ServerSettings(
                max_receive_message_bytes=env.integer(
                    "TODO_MAX_RECEIVE_MESSAGE_BYTES", 4 * MIB, minimum=1024, maximum=1024 * MIB
                ),
                max_send_message_bytes=env.integer(
                    "TODO_MAX_SEND_MESSAGE_BYTES", 4 * MIB, minimum=1024, maximum=1024 * MIB
                ),
                max_concurrent_rpcs=env.integer("TODO_MAX_CONCURRENT_RPCS", 128, minimum=0, maximum=1_000_000),
                max_rpc_seconds=env.seconds("TODO_MAX_RPC_SECONDS", 30.0, minimum=0.1, maximum=3600.0),
                keepalive_time_seconds=env.seconds("TODO_KEEPALIVE_TIME_SECONDS", 60.0, minimum=1.0),
                keepalive_timeout_seconds=env.seconds("TODO_KEEPALIVE_TIMEOUT_SECONDS", 20.0, minimum=1.0),
                max_connection_age_seconds=env.seconds("TODO_MAX_CONNECTION_AGE_SECONDS", 300.0, maximum=86400),
                max_connection_age_grace_seconds=env.seconds(
                    "TODO_MAX_CONNECTION_AGE_GRACE_SECONDS", 30.0, maximum=86400
                ),
                max_concurrent_streams=env.integer(
                    "TODO_MAX_CONCURRENT_STREAMS", DEFAULT_MAX_CONCURRENT_STREAMS, minimum=1, maximum=65_536
                ),
                overload_protection=env.read("TODO_GRPC_OVERLOAD_PROTECTION", True, boolean),
                max_health_watches=env.integer("TODO_MAX_HEALTH_WATCHES", 1000, minimum=0, maximum=1_000_000),
            ),
            workers=workers,
            mongodb=mongodb,
            health_address=health_address,
            health_interval_seconds=env.seconds(
                "TODO_HEALTH_CHECK_INTERVAL_SECONDS", DEFAULT_HEALTH_INTERVAL_SECONDS, minimum=0.05
            ),
            grpc_address=grpc_address,
            log_level=env.read("TODO_LOG_LEVEL", "INFO", lambda value: one_of(value.upper(), LOG_LEVELS)),
            shutdown_grace_seconds=env.seconds("TODO_SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE_SECONDS),
            page_token_secret=page_token_secret(env, mongodb is not None),
            tracing=_tracing(env),
            warnings=tuple(warnings),
        )
        env.finish()
        return settings

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def _mongodb(env: EnvReader) -> MongoSettings | None:
    uri = secret_or_file(env, "TODO_MONGODB_URI", "TODO_MONGODB_URI_FILE")
    if uri is None:
        return None
    # The message never repeats the URI: it may hold a password.
    in_uri: str | None = None
    try:
        in_uri = _database_in_uri(uri)
    except ConfigError as error:
        env.fail(f"TODO_MONGODB_URI {error}")
    database = env.read("TODO_MONGODB_DATABASE", in_uri or DEFAULT_DATABASE, _database)
    return MongoSettings(
        uri=uri,
        database=database,
        driver=cast(Driver, env.choice("TODO_MONGODB_DRIVER", "motor", MONGODB_DRIVERS)),
        operation_timeout_seconds=env.seconds("TODO_MONGODB_TIMEOUT_SECONDS", 5.0, minimum=0.01),
        server_selection_timeout_seconds=env.seconds(
            "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS", 2.0, minimum=0.01
        ),
        connect_timeout_seconds=env.seconds("TODO_MONGODB_CONNECT_TIMEOUT_SECONDS", 2.0, minimum=0.01),
    )


def _database(name: str) -> str:
    if not _DATABASE.fullmatch(name):
        raise ConfigError("must be 1-63 characters of [A-Za-z0-9_-]")
    return name


def _database_in_uri(uri: str) -> str | None:
    """Check the URI without any network access; the database it names, if any."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme == "mongodb+srv":
        # Full parsing would look the SRV record up; check the shape only.
        parts = urlsplit(uri)
        if not parts.hostname:
            raise ConfigError("is not a valid mongodb+srv:// URI (no host)")
        database: str | None = unquote(parts.path.lstrip("/")) or None
    else:
        from pymongo.errors import ConfigurationError, InvalidURI  # noqa: PLC0415 (only with a URI)
        from pymongo.uri_parser import parse_uri  # noqa: PLC0415

        try:
            database = parse_uri(uri)["database"]
        except (InvalidURI, ConfigurationError, ValueError) as error:
            raise ConfigError(f"is not a valid MongoDB URI: {str(error).replace(uri, '<uri>')}") from None
    if database is not None and not _DATABASE.fullmatch(database):
        raise ConfigError("names a database that is not 1-63 characters of [A-Za-z0-9_-]")
    return database


def _tracing(env: EnvReader) -> TracingSettings:
    """The OTEL_* switch: on when an exporter is named or an OTLP endpoint is set."""
    if (env.raw("OTEL_SDK_DISABLED") or "").lower() == "true":
        return TracingSettings()
    endpoint = env.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.raw("OTEL_EXPORTER_OTLP_ENDPOINT")
    default: tuple[str, ...] = ("otlp",) if endpoint else ()
    names = env.read("OTEL_TRACES_EXPORTER", default, _exporters)
    return TracingSettings(
        exporters=tuple(name for name in names if name != "none"),
        service_name=env.raw("OTEL_SERVICE_NAME") or "todo-service",
        otlp_endpoint=endpoint,
    )


def _exporters(value: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    for name in names:
        if name not in TRACE_EXPORTERS:
            raise ConfigError(f"is not supported ({', '.join(TRACE_EXPORTERS)})")
    return names


def local_health_address(environ: Mapping[str, str]) -> str:
    """127.0.0.1 and the port of TODO_HEALTH_ADDRESS, else TODO_GRPC_ADDRESS: where a local probe looks."""
    env = EnvReader(environ)
    configured = env.read("TODO_HEALTH_ADDRESS", "", address) or env.read(
        "TODO_GRPC_ADDRESS", DEFAULT_GRPC_ADDRESS, address
    )
    env.finish()
    return f"127.0.0.1:{configured.rsplit(':', 1)[1]}"
