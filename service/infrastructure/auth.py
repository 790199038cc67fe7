"""Bearer-token authentication for todo.v1.TodoService.

The tokens file (TODO_AUTH_TOKENS_FILE, typically a mounted Kubernetes
Secret) holds one token a line, either in clear or as `sha256:<hex digest>`;
empty lines and `#` comments are ignored. Only SHA-256 digests are kept in
memory, and a presented token is compared with every digest in constant time.
The file is re-read when it changes (checked at most every
TODO_AUTH_TOKENS_RELOAD_SECONDS), so rotating a mounted secret needs no
restart, and removing a token revokes it within that interval. A file that
turns missing, unreadable, malformed or empty refuses every token: access
fails closed, never on the previous tokens. Tokens never reach a log line or
an error message.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Iterable
from typing import Protocol

from service.infrastructure.config import ConfigError

_log = logging.getLogger(__name__)
DEFAULT_RELOAD_SECONDS = 5.0  # TODO_AUTH_TOKENS_RELOAD_SECONDS


class TokenCheck(enum.Enum):
    """What a call's `authorization` metadata amounts to."""

    VALID = "valid"
    MISSING = "missing"  # no `authorization` metadata at all
    INVALID = "invalid"  # a token that is not known, or not a bearer token


class TokenFileError(ValueError):
    """The tokens file cannot be used."""


def token_digests(path: str) -> tuple[bytes, ...]:
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise TokenFileError(f"cannot read the tokens file {path!r}: {error}") from None
    digests: list[bytes] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("sha256:"):
            try:
                digest = bytes.fromhex(line.removeprefix("sha256:"))
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise TokenFileError(f"{path}:{number}: a sha256: line needs 64 hex digits")
            digests.append(digest)
        else:
            digests.append(hashlib.sha256(line.encode()).digest())
    if not digests:
        raise TokenFileError(f"the tokens file {path!r} holds no token")
    return tuple(digests)


def load_authenticator(path: str | None, reload_seconds: float = DEFAULT_RELOAD_SECONDS) -> TokenAuthenticator | None:
    """The authenticator of TODO_AUTH_TOKENS_FILE (None: no authentication); ConfigError when unusable."""
    if path is None:
        return None
    try:
        return TokenAuthenticator(path, reload_seconds)
    except (OSError, TokenFileError) as error:
        raise ConfigError(f"TODO_AUTH_TOKENS_FILE: {error}") from None


class TokenObserver(Protocol):
    """Where the authenticator reports its state (the metrics)."""

    def tokens_loaded(self, count: int) -> None:
        """`count` tokens are accepted from now on (0: the file is unusable, every call is refused)."""

    def reload_failed(self) -> None:
        """A reload found the file unusable."""


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    # A Kubernetes Secret update swaps a symlink: a new inode as well as a new mtime.
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class TokenAuthenticator:
    """Checks the `authorization: Bearer <token>` metadata of a call.

    The file is checked for a change at most every `reload_seconds`, on the
    next call. Fail closed: when a reload finds it missing, unreadable,
    malformed or without a token, every token is refused (logged at ERROR,
    counted) until the file is usable again; then its tokens work again.
    """

    def __init__(self, path: str, reload_seconds: float = DEFAULT_RELOAD_SECONDS) -> None:
        self._path = path
        self._reload_seconds = reload_seconds
        signature = _signature(os.stat(path))
        self._digests = token_digests(path)
        self._signature: tuple[int, int, int] | None = signature
        self._next_check = time.monotonic() + reload_seconds
        self._observer: TokenObserver | None = None

    @property
    def token_count(self) -> int:
        """How many tokens are accepted right now (0: every call is refused)."""
        return len(self._digests)

    def report_to(self, observer: TokenObserver) -> None:
        """Report the number of tokens and failed reloads to `observer` from now on."""
        self._observer = observer
        observer.tokens_loaded(len(self._digests))

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._reload_seconds
        try:
            signature = _signature(os.stat(self._path))
        except OSError as error:
            self._fail(None, f"cannot read the tokens file {self._path!r}: {error.strerror}")
            return
        if signature == self._signature:
            return
        try:
            digests = token_digests(self._path)
        except (OSError, TokenFileError) as error:
            self._fail(signature, str(error))
            return
        self._digests, self._signature = digests, signature
        _log.info("tokens file reloaded: %d tokens", len(digests))
        if self._observer is not None:
            self._observer.tokens_loaded(len(digests))

    def _fail(self, signature: tuple[int, int, int] | None, reason: str) -> None:
        """Refuse every token; log and count once per change of the file."""
        if self._digests or signature != self._signature:
            _log.error("tokens file unusable, every token is refused until it is fixed: %s", reason)
            if self._observer is not None:
                self._observer.reload_failed()
                self._observer.tokens_loaded(0)
        self._digests, self._signature = (), signature

    def check(self, metadata: Iterable[tuple[str, str | bytes]]) -> TokenCheck:
        """Whether the metadata carries a known bearer token, none, or another one."""
        self._refresh()
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return TokenCheck.INVALID
                presented = hashlib.sha256(token.strip().encode()).digest()
                matched = False
                for digest in self._digests:  # no early exit: constant time in the number of tokens
                    matched |= hmac.compare_digest(presented, digest)
                return TokenCheck.VALID if matched else TokenCheck.INVALID
        return TokenCheck.MISSING
