"""Typed settings, read from the environment and validated at start-up: the table of settings.

Each field declared with `setting(...)` is one row of the table: variable,
default, kind of value (with its bounds), secret or not, meaning. The reader
(`Settings.from_env`) and the reference (docs/configuration.md) are derived
from these rows; a handful of rules below read what one row cannot say alone
(a secret or its *_FILE, the TLS files as a set, the OpenTelemetry switch, a
default that depends on another setting, the checks that span settings).
Adding a setting: a field here, and its use.

`Settings.from_env` is the one place the process reads its environment. It
checks every variable and reports every bad one at once, in one ConfigError,
which `python -m service` prints in one line before exiting with status 2.
This package is the bottom of the infrastructure: it imports no adapter.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from service.infrastructure.config.authz_policy import AUTHZ_POLICY_FILE, PolicySource
from service.infrastructure.config.credentials import (
    TOKENS_FILE,
    TlsSettings,
    TokensFile,
    page_token_secret,
    secret_or_file,
    tls_settings,
)
from service.infrastructure.config.quotas import MIN_RATE, QUOTA_FILE
from service.infrastructure.config.reader import (
    ADDRESS,
    BOOLEAN,
    ConfigError,
    Described,
    EnvReader,
    OneOf,
    Seconds,
    Whole,
    address,
)
from service.infrastructure.config.table import nested, read_group, row_of, setting

MIB = 1024 * 1024
DEFAULT_DATABASE = "todo"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRACE_EXPORTERS = ("otlp", "console", "none")

Driver = Literal["motor", "pymongo"]

_DATABASE = re.compile(r"[A-Za-z0-9_-]{1,63}")


def _database(name: str) -> str:
    if not _DATABASE.fullmatch(name):
        raise ConfigError("must be 1-63 characters of [A-Za-z0-9_-]")
    return name


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise ConfigError("is not a number of calls per second") from None
    if not (rate == 0 or MIN_RATE <= rate <= 1_000_000):  # below MIN_RATE a refusal's RetryInfo would overflow
        raise ConfigError(f"must be 0 (no limit) or between {MIN_RATE:g} and 1,000,000 calls per second")
    return rate


def _exporters(value: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    for name in names:
        if name not in TRACE_EXPORTERS:
            raise ConfigError(f"is not supported ({', '.join(TRACE_EXPORTERS)})")
    return names


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """gRPC server knobs."""

    max_receive_message_bytes: int = setting(
        "TODO_MAX_RECEIVE_MESSAGE_BYTES",
        4 * MIB,
        Whole(1024, 1024 * MIB),
        "larger requests are refused with `RESOURCE_EXHAUSTED`",
        shown_default="`4194304` (4 MiB)",
    )
    max_send_message_bytes: int = setting(
        "TODO_MAX_SEND_MESSAGE_BYTES",
        4 * MIB,
        Whole(1024, 1024 * MIB),
        "largest response",
        shown_default="`4194304` (4 MiB)",
    )
    max_concurrent_rpcs: int = setting(
        "TODO_MAX_CONCURRENT_RPCS",
        128,
        Whole(0, 1_000_000),
        "`todo.v1.TodoService` calls in progress at once (0: no limit); beyond it a call is refused before any "
        "work with `UNAVAILABLE` (`CONCURRENCY_LIMIT_REACHED`, with a `RetryInfo` and gRPC's retry pushback). "
        "Health and reflection are never counted, so probes answer whatever the application traffic does. It "
        "bounds calls that wait on the database; against a CPU flood see [Overload](overload.md)",
    )
    max_concurrent_rpcs_per_principal: int = setting(
        "TODO_MAX_CONCURRENT_RPCS_PER_PRINCIPAL",
        0,
        Whole(0, 1_000_000),
        "`todo.v1.TodoService` calls one principal may have in progress at once (its share of "
        "`TODO_MAX_CONCURRENT_RPCS`; 0: no share); beyond it its call is refused before any work with "
        "`RESOURCE_EXHAUSTED` (`QUOTA_EXCEEDED`, a `QuotaFailure` and a `RetryInfo`) while other principals "
        "keep their slots. Per process ([Quotas](security.md#quotas-per-principal))",
        shown_default="with tokens or mTLS: half of `TODO_MAX_CONCURRENT_RPCS`; without: 0",
    )
    rate_per_principal: float = setting(
        "TODO_RATE_PER_PRINCIPAL",
        0.0,
        Described(_rate, "calls per second: 0, or 0.001 to 1,000,000"),
        "calls per second one principal may start (a token bucket with a burst of one second's calls; 0: no "
        "rate); beyond it `RESOURCE_EXHAUSTED` (`QUOTA_EXCEEDED`) with the wait in `RetryInfo`. Per process",
    )
    max_rpc_seconds: float = setting(
        "TODO_MAX_RPC_SECONDS",
        30.0,
        Seconds(0.1, 3600),
        "the deadline the server assumes for a call that carries none: its database calls are bounded by it "
        "(`STORE_TIMEOUT`)",
    )
    keepalive_time_seconds: float = setting(
        "TODO_KEEPALIVE_TIME_SECONDS", 60.0, Seconds(1.0), "ping an idle connection this often"
    )
    keepalive_timeout_seconds: float = setting(
        "TODO_KEEPALIVE_TIMEOUT_SECONDS", 20.0, Seconds(1.0), "close it when a ping gets no answer in this time"
    )
    max_connection_age_seconds: float = setting(
        "TODO_MAX_CONNECTION_AGE_SECONDS",
        300.0,
        Seconds(0, 86400),
        "close connections (GOAWAY) after this age, so long-lived clients spread over new pods (0: never)",
    )
    max_connection_age_grace_seconds: float = setting(
        "TODO_MAX_CONNECTION_AGE_GRACE_SECONDS",
        30.0,
        Seconds(0, 86400),
        "time RPCs on an aged connection get to finish",
    )
    max_concurrent_streams: int = setting(
        "TODO_MAX_CONCURRENT_STREAMS",
        16,
        Whole(1, 65_536),
        "calls open at once on one HTTP/2 connection (`grpc.max_concurrent_streams`); a client queues the rest "
        "at no cost to the server, so one connection cannot make the server hold more, and a caller on another "
        "connection waits behind at most this many calls per flooding connection ([Overload](overload.md))",
    )
    # gRPC core refuses streams over that limit with RST_STREAM(REFUSED_STREAM), counting streams whose
    # calls are still being torn down: the cheap refusal, and the guard against reset floods (CVE-2023-44487).
    overload_protection: bool = setting(
        "TODO_GRPC_OVERLOAD_PROTECTION",
        True,
        BOOLEAN,
        "gRPC core refuses streams over `TODO_MAX_CONCURRENT_STREAMS` with `RST_STREAM(REFUSED_STREAM)`, counting "
        "the streams whose calls the server has not released yet: the cheap refusal (about a tenth of a served "
        "call's CPU) that keeps a flood from queueing more work than its streams, and the guard against reset "
        "floods (CVE-2023-44487). A client that keeps a connection at the limit has some streams refused "
        "(retried once by gRPC, then `UNAVAILABLE`): keep fewer calls than the limit in flight per connection, "
        "as the Python client does ([Overload](overload.md))",
    )
    max_health_watches: int = setting(
        "TODO_MAX_HEALTH_WATCHES",
        1000,
        Whole(0, 1_000_000),
        "`grpc.health.v1.Health/Watch` streams open at once over all connections (0: no limit); one more is "
        "refused with `RESOURCE_EXHAUSTED` (`WATCH_LIMIT_REACHED`). `Check` is never limited. About 20-30 KiB each",
    )
    max_health_watches_per_peer: int = setting(
        "TODO_MAX_HEALTH_WATCHES_PER_PEER",
        64,
        Whole(0, 1_000_000),
        "`Watch` streams open at once from one peer address (all its connections; 0: no limit), so one client "
        "cannot hold the server's whole `TODO_MAX_HEALTH_WATCHES` and make the replica look unhealthy to every "
        "client that health-checks it (gRFC A17 holds one stream per channel). Behind a proxy or a mesh sidecar "
        "that hides callers' addresses every caller is one peer: raise it there",
    )


@dataclass(frozen=True, slots=True)
class MongoSettings:
    """Where the MongoDB store lives and how long its calls may take."""

    uri: str = setting(
        "TODO_MONGODB_URI",
        None,
        None,  # a secret or its file, checked without echoing it (`_mongodb`)
        "MongoDB connection string; set: the entries live in MongoDB (collection `todos`), unset: in memory. "
        "A malformed one is a configuration error",
        shown_default="unset: in-memory store",
        secret=True,
        file_variable="TODO_MONGODB_URI_FILE",
        values="a `mongodb://` or `mongodb+srv://` URI",
    )
    database: str = setting(
        "TODO_MONGODB_DATABASE",
        DEFAULT_DATABASE,
        Described(_database, "1-63 characters of `[A-Za-z0-9_-]`"),
        "database name; wins over the one the URI names",
        shown_default=f"the database named in the URI (`mongodb://host/mydb`), else `{DEFAULT_DATABASE}`",
    )
    driver: Driver = setting(
        "TODO_MONGODB_DRIVER",
        "motor",
        OneOf(("motor", "pymongo")),
        "Motor, or PyMongo's `AsyncMongoClient`",
    )
    operation_timeout_seconds: float = setting(
        "TODO_MONGODB_TIMEOUT_SECONDS",
        5.0,
        Seconds(0.01),
        "maximum time of one database operation (less when the RPC's deadline is nearer)",
    )
    server_selection_timeout_seconds: float = setting(
        "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS",
        2.0,
        Seconds(0.01),
        "how long to look for a usable server before `UNAVAILABLE`",
    )
    connect_timeout_seconds: float = setting(
        "TODO_MONGODB_CONNECT_TIMEOUT_SECONDS", 2.0, Seconds(0.01), "TCP connect (and heartbeat) timeout"
    )


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OpenTelemetry traces, from the standard OTEL_* variables; no exporter: tracing off.

    Only whether and where spans go is read here; the OTLP exporter's transport
    options (OTEL_EXPORTER_OTLP_HEADERS, _CERTIFICATE, _TIMEOUT, ...) and
    OTEL_RESOURCE_ATTRIBUTES are applied by the OpenTelemetry SDK itself.
    """

    exporters: tuple[str, ...] = setting(
        "OTEL_TRACES_EXPORTER",
        (),
        None,  # `_tracing`: the default depends on the endpoint, and OTEL_SDK_DISABLED wins
        "`otlp`, `console` or `none` (a comma-separated list): tracing is on when it names an exporter or an "
        "OTLP endpoint is set, unless `OTEL_SDK_DISABLED=true`. The SDK applies the other standard variables "
        "(OTLP headers, certificates, timeout, resource attributes)",
        shown_default="unset: tracing off (`otlp` when an endpoint is set)",
        also=("OTEL_SDK_DISABLED",),
        values="`otlp`, `console`, `none`, comma-separated",
    )
    service_name: str = setting(
        "OTEL_SERVICE_NAME", "todo-service", None, "the service name on every span", values="text"
    )
    otlp_endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        None,
        "where the OTLP exporter sends spans (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` wins)",
        shown_default="unset: the SDK's default",
        also=("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",),
        values="URL",
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    grpc_address: str = setting(
        "TODO_GRPC_ADDRESS",
        "0.0.0.0:50051",
        ADDRESS,
        "where to listen",
        shown_default="`0.0.0.0:50051` (`make run`: `127.0.0.1:50051`)",
    )
    log_level: str = setting("TODO_LOG_LEVEL", "INFO", OneOf(LOG_LEVELS, upper=True), "the lowest level logged")
    log_format: str = setting(
        "TODO_LOG_FORMAT",
        "json",
        OneOf(("json", "console")),
        "`json` (one object a line) or `console` (for people)",
        shown_default="`json` (`make run`: `console`)",
    )
    access_log: bool = setting(
        "TODO_ACCESS_LOG",
        True,
        BOOLEAN,
        "one access line per RPC (logger `service.access`: method, code, duration, peer, request id), buffered "
        "and written by a background thread at least every 100 ms and at shutdown (a SIGTERM loses none); past "
        "10,000 lines waiting for a stalled stream new ones are dropped and counted "
        "(`todo_access_log_dropped_total`), never waited for; `false` for those who rely on the metrics",
    )
    metrics_address: str = setting(
        "TODO_METRICS_ADDRESS", "", ADDRESS, "where the Prometheus endpoint (`/metrics`) listens; empty: off"
    )
    shutdown_drain_seconds: float = setting(
        "TODO_SHUTDOWN_DRAIN_SECONDS",
        0.0,
        Seconds(),
        "after SIGTERM, how long to keep serving with health `NOT_SERVING` while traffic moves away "
        "(Kubernetes manifests: 5)",
    )
    shutdown_grace_seconds: float = setting(
        "TODO_SHUTDOWN_GRACE_SECONDS", 10.0, Seconds(), "then, how long in-flight RPCs may run on"
    )
    health_address: str = setting(
        "TODO_HEALTH_ADDRESS",
        "",
        ADDRESS,
        "a second, plaintext listener serving `grpc.health.v1` only, with the same statuses: for kubelet probes "
        "and the image `HEALTHCHECK` when the main port requires (m)TLS; empty: off. Not counted by any "
        "application limit. Suggested port: 50052; `python -m service.probe` without an address asks it when set",
    )
    health_interval_seconds: float = setting(
        "TODO_HEALTH_CHECK_INTERVAL_SECONDS", 2.0, Seconds(0.05), "how often readiness pings the store"
    )
    gc_interval_seconds: float = setting(
        "TODO_GC_INTERVAL_SECONDS",
        0.25,
        Seconds(0, 60),
        "how often the serving process collects the young generations of garbage (0: only when Python "
        "decides). A call that a reference cycle keeps alive (gRPC's own cancellation paths make some) keeps "
        "its HTTP/2 stream counted against the connection's limit until then; measured: a collection takes "
        "about 0.1 ms ([Overload](overload.md))",
    )
    event_loop: str = setting(
        "TODO_EVENT_LOOP",
        "uvloop",
        OneOf(("asyncio", "uvloop")),
        "uvloop measured 8-19% faster here (benchmarks/README.md); asyncio stays selectable",
    )
    workers: int = setting(
        "TODO_WORKERS",
        1,
        Whole(1, 64),
        "processes sharing the port (SO_REUSEPORT); more than 1 needs a fixed port and `TODO_MONGODB_URI`",
    )
    auth_tokens: TokensFile | None = setting(
        "TODO_AUTH_TOKENS_FILE",
        None,
        TOKENS_FILE,
        "bearer tokens for `todo.v1.TodoService`, one a line, in clear or as `sha256:<hex>` (docs/security.md); "
        "read at start (a file without a usable token is a configuration error) and again when it changes",
        shown_default="unset: no authentication",
    )
    auth_tokens_reload_seconds: float = setting(
        "TODO_AUTH_TOKENS_RELOAD_SECONDS",
        5.0,
        Seconds(0.05),
        "how often the tokens file is checked for a change: a removed token is refused within this time",
    )
    authz_policy: PolicySource | None = setting(
        "TODO_AUTHZ_POLICY_FILE",
        None,
        AUTHZ_POLICY_FILE,
        "which principal may call which method: gRPC's authorization-policy JSON (grpc-go `authz`; deny rules, "
        "then allow rules; docs/security.md). Read at start (a bad file is a configuration error) and again when "
        "it changes; a bad file then keeps the last good policy (an `ERROR` line, "
        "`todo_authz_policy_reload_failures_total`). Health is never subject to it",
        shown_default="unset: every authenticated caller may call every method",
    )
    authz_policy_reload_seconds: float = setting(
        "TODO_AUTHZ_POLICY_RELOAD_SECONDS",
        5.0,
        Seconds(0.05),
        "how often the policy file is checked for a change",
    )
    quota_file: dict[str, dict[str, float]] | None = setting(
        "TODO_QUOTA_FILE",
        None,
        QUOTA_FILE,
        'per-principal quotas replacing the defaults: `{"principals": {"reporter": {"max_concurrent_rpcs": 4, '
        '"rate_per_second": 20}}}` (docs/security.md); read at start (a bad file is a configuration error)',
        shown_default="unset: every principal gets the defaults",
    )
    reflection: bool = setting(
        "TODO_REFLECTION",
        True,
        BOOLEAN,
        "server reflection (it describes the whole API to anyone who can connect)",
        shown_default="on without tokens, off with them",
    )
    page_token_secret: str | None = setting(
        "TODO_PAGE_TOKEN_SECRET",
        None,  # a random secret made at start-up (from_env allows it with the in-memory store only)
        None,  # `credentials.page_token_secret`: required with MongoDB, placeholders refused
        "key that signs page tokens, the same on every replica (`openssl rand -base64 32`); several keys "
        "separated by commas (or lines of the file) rotate it: the first signs, every one verifies (tokens "
        "name their key). The value earlier releases built in, a placeholder (`changeme`, `secret`, "
        "`REPLACE-ME...`) or fewer than 16 bytes is a configuration error",
        shown_default="in-memory store: a random key per process; MongoDB: **required**",
        secret=True,
        file_variable="TODO_PAGE_TOKEN_SECRET_FILE",
        values="text, at least 16 bytes; or keys separated by commas",
    )
    tls: TlsSettings | None = nested(TlsSettings, optional=True)
    mongodb: MongoSettings | None = nested(MongoSettings, optional=True)
    server: ServerSettings = nested(ServerSettings)
    tracing: TracingSettings = nested(TracingSettings)
    # Never read from the environment: the supervisor sets it for its workers
    # (prometheus_client's multiprocess mode, see observability/metrics.py).
    metrics_multiprocess_dir: str | None = None
    # What start-up should log at WARNING (an expired certificate, a key others can read).
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = EnvReader(environ)
        warnings: list[str] = []
        mongodb = _mongodb(env)
        tokens = env.read(row_of(cls, "auth_tokens").variable, None, TOKENS_FILE)
        settings = read_group(
            cls,
            env,
            given={
                "auth_tokens": tokens,
                "page_token_secret": page_token_secret(
                    env, row_of(cls, "page_token_secret"), mongodb is not None, row_of(MongoSettings, "uri").variable
                ),
                "tls": tls_settings(env, warnings),
                "mongodb": mongodb,
                "server": _server(env, tokens is not None),
                "tracing": _tracing(env),
                "warnings": tuple(warnings),
            },
            # Reflection describes the whole API to anyone who can connect:
            # on by default without authentication, off by default with it.
            defaults={"reflection": tokens is None},
        )
        _check(settings, env)
        env.finish()
        return settings

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def _server(env: EnvReader, tokens: bool) -> ServerSettings:
    """The server's settings; the per-principal share defaults to half the application slots when callers are
    told apart (tokens or client certificates), else to none."""
    server = read_group(ServerSettings, env, given={})
    told_apart = tokens or env.raw(row_of(TlsSettings, "client_ca_file").variable) is not None
    if told_apart and env.raw(row_of(ServerSettings, "max_concurrent_rpcs_per_principal").variable) is None:
        server = dataclasses.replace(server, max_concurrent_rpcs_per_principal=(server.max_concurrent_rpcs + 1) // 2)
    return server


def _check(settings: Settings, env: EnvReader) -> None:
    """The rules that span settings."""
    if settings.workers <= 1:
        return
    for name in ("grpc_address", "health_address"):
        if str(getattr(settings, name)).endswith(":0"):
            variable = row_of(Settings, name).variable
            env.fail(f"TODO_WORKERS > 1 needs a fixed port in {variable} (the workers share it)")
    if settings.mongodb is None:
        # Also what keeps the random page-token secret to one process: it is never shared.
        env.fail("TODO_WORKERS > 1 needs TODO_MONGODB_URI: each worker would keep its own in-memory store")


def _mongodb(env: EnvReader) -> MongoSettings | None:
    uri_row = row_of(MongoSettings, "uri")
    uri = secret_or_file(env, uri_row)
    if uri is None:
        return None
    # The message never repeats the URI: it may hold a password.
    in_uri: str | None = None
    try:
        in_uri = _database_in_uri(uri)
    except ConfigError as error:
        env.fail(f"{uri_row.variable} {error}")
    return read_group(MongoSettings, env, given={"uri": uri}, defaults={"database": in_uri or DEFAULT_DATABASE})


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
    exporters, service_name, endpoint_row = (
        row_of(TracingSettings, name) for name in ("exporters", "service_name", "otlp_endpoint")
    )
    disabled, traces_endpoint = exporters.also[0], endpoint_row.also[0]
    if (env.raw(disabled) or "").lower() == "true":
        return TracingSettings()
    endpoint = env.raw(traces_endpoint) or env.raw(endpoint_row.variable)
    default: tuple[str, ...] = ("otlp",) if endpoint else ()
    names = env.read(exporters.variable, default, _exporters)
    return TracingSettings(
        exporters=tuple(name for name in names if name != "none"),
        service_name=env.raw(service_name.variable) or TracingSettings().service_name,
        otlp_endpoint=endpoint,
    )


def local_health_address(environ: Mapping[str, str]) -> str:
    """127.0.0.1 and the port of TODO_HEALTH_ADDRESS, else TODO_GRPC_ADDRESS: where a local probe looks."""
    env = EnvReader(environ)
    health, grpc = row_of(Settings, "health_address"), row_of(Settings, "grpc_address")
    configured = env.read(health.variable, "", address) or env.read(grpc.variable, Settings().grpc_address, address)
    env.finish()
    return f"127.0.0.1:{configured.rsplit(':', 1)[1]}"
