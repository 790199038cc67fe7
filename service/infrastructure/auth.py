"""Bearer-token authentication for todo.v1.TodoService.

The tokens file (TODO_AUTH_TOKENS_FILE, typically a mounted Kubernetes
Secret) holds one token a line, either in clear or as `sha256:<hex digest>`;
empty lines and `#` comments are ignored. Only SHA-256 digests are kept in
memory, and a presented token is compared with every digest in constant time.
The file is re-read when it changes (checked at most every few seconds), so
rotating a mounted secret needs no restart. Tokens never reach a log line or
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

from service.infrastructure.config import ConfigError

_log = logging.getLogger(__name__)
RECHECK_SECONDS = 5.0


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


def load_authenticator(path: str | None) -> TokenAuthenticator | None:
    """The authenticator of TODO_AUTH_TOKENS_FILE (None: no authentication); ConfigError when unusable."""
    if path is None:
        return None
    try:
        return TokenAuthenticator(path)
    except (OSError, TokenFileError) as error:
        raise ConfigError(f"TODO_AUTH_TOKENS_FILE: {error}") from None


class TokenAuthenticator:
    """Checks the `authorization: Bearer <token>` metadata of a call."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._digests = token_digests(path)
        self._mtime = os.stat(path).st_mtime_ns
        self._next_check = time.monotonic() + RECHECK_SECONDS

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + RECHECK_SECONDS
        try:
            mtime = os.stat(self._path).st_mtime_ns
            if mtime != self._mtime:
                self._digests, self._mtime = token_digests(self._path), mtime
                _log.info("tokens file reloaded: %d tokens", len(self._digests))
        except (OSError, TokenFileError) as error:
            _log.error("keeping the previous tokens: %s", error)

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
