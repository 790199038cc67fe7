"""Secrets and key material in the configuration, checked while it is read (part of `Settings.from_env`).

A secret that is missing, empty, the old built-in value or an obvious
placeholder stops the start (fail closed); so do TLS files that do not parse
or do not match (one line naming the file, exit 2), not a "Failed to bind"
when the port opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.infrastructure import pem
from service.infrastructure.config_reader import ConfigError, EnvReader

# The value earlier releases used when no secret was configured: public in the
# source, so it is refused like a placeholder.
BUILT_IN_PAGE_TOKEN_SECRET = "todo-service-default-page-token-secret"  # noqa: S105 (refused, never used)
MIN_SECRET_BYTES = 16
# Values that are left in templates and examples, never chosen (compared ignoring
# case and punctuation), and words that mark a value as a placeholder.
_PLACEHOLDER_SECRETS = frozenset(
    {"secret", "password", "changeme", "changeit", "default", "example", "test", "todo", "xxx", "none", "null"}
)
_PLACEHOLDER_WORDS = ("changeme", "replaceme", "placeholder", "yoursecret", "insertsecret")


def secret_or_file(env: EnvReader, name: str, file_name: str) -> str | None:
    """`name` or the content of the file `file_name` (a mounted secret; a final newline is dropped); not both."""
    value, content = env.raw(name), env.read(file_name, None, _secret_file)
    if value is not None and env.raw(file_name) is not None:
        env.fail(f"{name} and {file_name} are both set: set one")
        return None
    return value if content is None else content


def _secret_file(path: str) -> str:
    """The text of a secret file, read once (missing, unreadable, not UTF-8 or empty: a ConfigError)."""
    try:
        with open(path, encoding="utf-8") as file:
            content = file.read().strip()
    except OSError as error:
        raise ConfigError(f"cannot be read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"cannot be read as UTF-8 text: {error}") from None
    if not content:
        raise ConfigError("is empty")
    return content


def page_token_secret(env: EnvReader, persistent: bool) -> str | None:
    """The configured secret; required with MongoDB (its tokens outlive the process and cross replicas)."""
    secret = secret_or_file(env, "TODO_PAGE_TOKEN_SECRET", "TODO_PAGE_TOKEN_SECRET_FILE")
    if secret is None:
        if persistent and env.raw("TODO_PAGE_TOKEN_SECRET_FILE") is None:
            env.fail(
                "TODO_PAGE_TOKEN_SECRET (or TODO_PAGE_TOKEN_SECRET_FILE) is required with TODO_MONGODB_URI: "
                "the same random value on every replica, e.g. `openssl rand -base64 32`"
            )
        return None
    problem = secret_problem(secret)
    if problem is not None:
        env.fail(f"TODO_PAGE_TOKEN_SECRET {problem}; use a random value, e.g. `openssl rand -base64 32`")
        return None
    return secret


def secret_problem(secret: str) -> str | None:
    """Why `secret` cannot sign anything (the built-in value, a placeholder, too short), or None."""
    folded = re.sub(r"[^a-z0-9]", "", secret.lower())
    if secret == BUILT_IN_PAGE_TOKEN_SECRET:
        return "is the built-in value, public in the source"
    if folded in _PLACEHOLDER_SECRETS or any(word in folded for word in _PLACEHOLDER_WORDS):
        return "is a placeholder"
    if len(set(secret)) <= 2:
        return "is one or two characters repeated"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Server certificate and key (PEM files); with a client CA, clients must present a certificate it signed."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


def tls_settings(env: EnvReader, warnings: list[str]) -> TlsSettings | None:
    cert, key = env.file("TODO_TLS_CERT_FILE"), env.file("TODO_TLS_KEY_FILE")
    client_ca = env.file("TODO_TLS_CLIENT_CA_FILE")
    if env.raw("TODO_TLS_CERT_FILE") is None and env.raw("TODO_TLS_KEY_FILE") is None:
        if env.raw("TODO_TLS_CLIENT_CA_FILE") is not None:
            env.fail("TODO_TLS_CLIENT_CA_FILE needs TODO_TLS_CERT_FILE and TODO_TLS_KEY_FILE")
        return None
    if env.raw("TODO_TLS_CERT_FILE") is None or env.raw("TODO_TLS_KEY_FILE") is None:
        env.fail("TODO_TLS_CERT_FILE and TODO_TLS_KEY_FILE go together: set both or neither")
    if cert is None or key is None:
        return None
    # Load the PEM files now: a bad one is a configuration error naming the
    # file, not a "Failed to bind" when the port is opened.
    try:
        pem.check_key_pair(cert, key)
        warnings.extend(pem.validity_warnings(cert))
        if pem.readable_by_others(key):
            warnings.append(
                f"TODO_TLS_KEY_FILE {key!r} is readable by group or others: make it 0400 or 0600 "
                "(Kubernetes: defaultMode: 0400 on the secret volume)"
            )
    except ConfigError as error:
        env.fail(str(error))
    except OSError as error:
        env.fail(f"TLS files cannot be read: {error}")
    if client_ca is not None:
        try:
            pem.check_certificates(client_ca, "TODO_TLS_CLIENT_CA_FILE")
        except ConfigError as error:
            env.fail(str(error))
        except OSError as error:
            env.fail(f"TODO_TLS_CLIENT_CA_FILE cannot be read: {error}")
    return TlsSettings(cert_file=cert, key_file=key, client_ca_file=client_ca)
