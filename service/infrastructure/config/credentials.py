"""Secrets and key material in the configuration, read and checked with it (part of `Settings.from_env`).

A secret that is missing, empty, the old built-in value or an obvious
placeholder stops the start (fail closed); so do TLS files that do not parse
or do not match (one line naming the file, exit 2), not a "Failed to bind"
when the port opens; so does a tokens file without a usable token. The
tokens file is read here once; the authenticator starts from what was read
and re-reads the file (with `read_tokens`) only when it changes.

The rules take their variable names from the table's rows (`table.row_of`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass, field

from service.infrastructure.config import pem
from service.infrastructure.config.reader import READABLE_FILE, ConfigError, Described, EnvReader
from service.infrastructure.config.table import Setting, row_of, setting

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


def secret_or_file(env: EnvReader, row: Setting) -> str | None:
    """The row's variable or the content of its *_FILE (a mounted secret; a final newline is dropped); not both."""
    name, file_name = row.variable, row.file_variable
    assert file_name is not None, f"{name} has no *_FILE form"
    value, content = env.raw(name), env.read(file_name, None, _secret_file)
    if value is not None and env.raw(file_name) is not None:
        env.fail(f"{name} and {file_name} are both set: set one")
        return None
    return value if content is None else content


def read_text(path: str, limit: int | None = None) -> str:
    """The text of a file, read once (missing, unreadable or not UTF-8: a ConfigError); with `limit`, a file
    of more than `limit` bytes is a ConfigError too, found before and while reading (a file that grows, or
    one whose size says nothing, such as a device, is never read past it)."""
    try:
        if limit is not None and os.stat(path).st_size > limit:
            raise ConfigError(f"is larger than {limit} bytes")
        with open(path, encoding="utf-8") as file:
            text = file.read() if limit is None else file.read(limit + 1)
    except OSError as error:
        raise ConfigError(f"cannot be read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"cannot be read as UTF-8 text: {error}") from None
    if limit is not None and len(text) > limit:  # characters: more than `limit` of them is more than `limit` bytes
        raise ConfigError(f"is larger than {limit} bytes")
    return text


def _secret_file(path: str) -> str:
    """The text of a secret file without its surrounding blanks (empty: a ConfigError)."""
    content = read_text(path).strip()
    if not content:
        raise ConfigError("is empty")
    return content


def page_token_secret(env: EnvReader, row: Setting, persistent: bool, store: str) -> str | None:
    """The configured secret; required with MongoDB (`store`: its tokens outlive the process and cross replicas)."""
    secret = secret_or_file(env, row)
    if secret is None:
        if persistent and env.raw(str(row.file_variable)) is None:
            env.fail(
                f"{row.variable} (or {row.file_variable}) is required with {store}: "
                "the same random value on every replica, e.g. `openssl rand -base64 32`"
            )
        return None
    for number, key in enumerate(page_token_keys(secret), start=1):
        problem = secret_problem(key)
        if problem is not None:
            which = "" if "," not in secret and "\n" not in secret else f" (key {number})"
            env.fail(f"{row.variable}{which} {problem}; use a random value, e.g. `openssl rand -base64 32`")
            return None
    return secret


def page_token_keys(secret: str) -> list[str]:
    """The keys of a page-token secret: one, or several separated by commas or lines (the first signs)."""
    return [key.strip() for key in re.split(r"[,\n]", secret) if key.strip()]


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

    cert_file: str = setting(
        "TODO_TLS_CERT_FILE",
        dataclasses.MISSING,
        READABLE_FILE,
        "PEM server certificate (chain): serve TLS only, with `TODO_TLS_KEY_FILE`. Loaded at start: one that "
        "does not parse is a configuration error naming the file; an expired or not-yet-valid one is logged "
        "at `WARNING`",
        shown_default="unset: plaintext",
    )
    key_file: str = setting(
        "TODO_TLS_KEY_FILE",
        dataclasses.MISSING,
        READABLE_FILE,
        "PEM private key (unencrypted) of that certificate: one that does not parse or does not match the "
        "certificate is a configuration error naming the file; one readable by group or others is logged at "
        "`WARNING`",
        shown_default="unset: plaintext",
    )
    client_ca_file: str | None = setting(
        "TODO_TLS_CLIENT_CA_FILE",
        None,
        READABLE_FILE,
        "PEM CA bundle: clients must present a certificate it signed (mTLS); one that does not parse is a "
        "configuration error",
    )


def tls_settings(env: EnvReader, warnings: list[str]) -> TlsSettings | None:
    """The TLS files (each a readable file), checked as a set and loaded; None: plaintext."""
    cert, key, ca = (row_of(TlsSettings, name) for name in ("cert_file", "key_file", "client_ca_file"))
    cert_file, key_file, client_ca = (env.read(row.variable, None, READABLE_FILE) for row in (cert, key, ca))
    if env.raw(cert.variable) is None and env.raw(key.variable) is None:
        if env.raw(ca.variable) is not None:
            env.fail(f"{ca.variable} needs {cert.variable} and {key.variable}")
        return None
    if env.raw(cert.variable) is None or env.raw(key.variable) is None:
        env.fail(f"{cert.variable} and {key.variable} go together: set both or neither")
    if cert_file is None or key_file is None:
        return None
    # Load the PEM files now: a bad one is a configuration error naming the
    # file, not a "Failed to bind" when the port is opened.
    try:
        pem.check_key_pair(cert_file, key_file)
        warnings.extend(pem.validity_warnings(cert_file))
        if pem.readable_by_others(key_file):
            warnings.append(
                f"{key.variable} {key_file!r} is readable by group or others: make it 0400 or 0600 "
                "(Kubernetes: defaultMode: 0400 on the secret volume)"
            )
    except ConfigError as error:
        env.fail(str(error))
    except OSError as error:
        env.fail(f"TLS files cannot be read: {error}")
    if client_ca is not None:
        try:
            pem.check_certificates(client_ca, ca.variable)
        except ConfigError as error:
            env.fail(str(error))
        except OSError as error:
            env.fail(f"{ca.variable} cannot be read: {error}")
    return TlsSettings(cert_file=cert_file, key_file=key_file, client_ca_file=client_ca)


@dataclass(frozen=True, slots=True)
class TokensFile:
    """A tokens file as read: its path, the SHA-256 digests of its tokens with each token's principal name,
    and what identifies this version of it."""

    path: str
    digests: tuple[bytes, ...] = field(repr=False)
    signature: tuple[int, int, int]
    names: tuple[str, ...]  # the principal of each digest, in the same order

    def principal_names(self) -> tuple[str, ...]:
        """The names, one per digest (a line without a name has one made from its digest)."""
        return self.names


MAX_TOKENS_FILE_BYTES = 1024 * 1024
MIN_TOKEN_BYTES = 16
PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@=,+-]{0,127}")


def token_principal(digest: bytes) -> str:
    """The principal of a token that the file gives no name: derived from its digest, never the token."""
    return f"token:{digest.hex()[:12]}"


def file_signature(stat: os.stat_result) -> tuple[int, int, int]:
    """What changes when the file does (a Kubernetes Secret update swaps a symlink: a new inode too)."""
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _token_digest(token: str, number: int) -> bytes:
    if token.startswith("sha256:"):
        try:
            digest = bytes.fromhex(token.removeprefix("sha256:"))
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(f"line {number}: a sha256: token needs 64 hex digits")
        return digest
    problem = token_problem(token)
    if problem is not None:
        raise ConfigError(f"line {number}: the token {problem}")
    return hashlib.sha256(token.encode()).digest()


def token_problem(token: str) -> str | None:
    """Why `token` is too weak to accept (a placeholder, too short), or None."""
    folded = re.sub(r"[^a-z0-9]", "", token.lower())
    if folded in _PLACEHOLDER_SECRETS or any(word in folded for word in _PLACEHOLDER_WORDS) or token.startswith("<"):
        return "is a placeholder"
    if len(token.encode()) < MIN_TOKEN_BYTES:
        return f"is shorter than {MIN_TOKEN_BYTES} bytes (use e.g. `openssl rand -base64 32`)"
    if len(set(token)) <= 2:
        return "is one or two characters repeated"
    return None


def read_tokens(path: str) -> TokensFile:
    """The tokens of the file at `path`, one a line: `<token>` or `<principal> <token>`.

    A token is in clear (at least 16 bytes, not a placeholder) or `sha256:<64
    hex digits>`; a principal name is 1-128 characters of
    `[A-Za-z0-9._:/@=,+-]` (a SPIFFE id fits). Blank lines and `#` comments are
    ignored; the file is at most 1 MiB. Only digests are kept. ConfigError
    (saying what is wrong, never a token) when the file cannot be read or
    holds no usable token.
    """
    try:
        signature = file_signature(os.stat(path))
    except OSError as error:
        raise ConfigError(f"cannot be read: {error.strerror}") from None
    lines = read_text(path, MAX_TOKENS_FILE_BYTES).splitlines()
    digests: list[bytes] = []
    names: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) > 2:
            raise ConfigError(f"line {number}: expected `<token>` or `<principal> <token>`")
        digest = _token_digest(fields[-1], number)
        if len(fields) == 2:
            if not PRINCIPAL_NAME.fullmatch(fields[0]):
                raise ConfigError(f"line {number}: a principal name is 1-128 characters of [A-Za-z0-9._:/@=,+-]")
            names.append(fields[0])
        else:
            names.append(token_principal(digest))
        digests.append(digest)
    if not digests:
        raise ConfigError("holds no token")
    return TokensFile(path=path, digests=tuple(digests), signature=signature, names=tuple(names))


TOKENS_FILE = Described(read_tokens, "path of a file of bearer tokens, one a line (`<token>` or `<principal> <token>`)")
