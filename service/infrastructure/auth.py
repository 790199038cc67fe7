"""Bearer-token authentication for todo.v1.TodoService.

The tokens file (TODO_AUTH_TOKENS_FILE, typically a mounted Kubernetes
Secret) is read once with the rest of the configuration
(`config.read_tokens`: one token a line, in clear or as `sha256:<hex
digest>`); only SHA-256 digests are kept, and a presented token is looked
up by its digest (a dict: the cost does not grow with the file's 60,000 tokens
at most, and the time a lookup takes says nothing usable about a token, only
about digests, which nobody can invert). The authenticator starts from what the
configuration read and re-reads the file only when it changes (checked at
most every TODO_AUTH_TOKENS_RELOAD_SECONDS), so rotating a mounted secret
needs no restart, and removing a token revokes it within that interval. A
file that turns missing, unreadable, malformed or empty refuses every token:
access fails closed, never on the previous tokens. Tokens never reach a log
line or an error message.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import time
from collections.abc import Iterable
from typing import Protocol

from service.infrastructure.config import ConfigError, TokensFile, file_signature, read_tokens

_log = logging.getLogger(__name__)


class TokenCheck(enum.Enum):
    """What a call's `authorization` metadata amounts to."""

    VALID = "valid"
    MISSING = "missing"  # no `authorization` metadata at all
    INVALID = "invalid"  # a token that is not known, or not a bearer token


class TokenObserver(Protocol):
    """Where the authenticator reports its state (the metrics)."""

    def tokens_loaded(self, count: int) -> None:
        """`count` tokens are accepted from now on (0: the file is unusable, every call is refused)."""

    def reload_failed(self) -> None:
        """A reload found the file unusable."""


class TokenAuthenticator:
    """Checks the `authorization: Bearer <token>` metadata of a call.

    The file is checked for a change at most every `reload_seconds`, on the
    next call. Fail closed: when a reload finds it missing, unreadable,
    malformed or without a token, every token is refused (logged at ERROR,
    counted) until the file is usable again; then its tokens work again.
    """

    def __init__(self, tokens: TokensFile, reload_seconds: float) -> None:
        self._path = tokens.path
        self._reload_seconds = reload_seconds
        self._digests = tokens.digests
        self._names = tokens.principal_names()
        self._by_digest = dict(zip(self._digests, self._names, strict=True))
        self._signature: tuple[int, int, int] | None = tokens.signature
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
            signature = file_signature(os.stat(self._path))
        except OSError as error:
            self._fail(None, f"the tokens file {self._path!r} cannot be read: {error.strerror}")
            return
        if signature == self._signature:
            return
        try:
            tokens = read_tokens(self._path)
        except ConfigError as error:
            self._fail(signature, f"the tokens file {self._path!r} {error}")
            return
        self._digests, self._names, self._signature = tokens.digests, tokens.principal_names(), tokens.signature
        self._by_digest = dict(zip(self._digests, self._names, strict=True))
        _log.info("tokens file reloaded: %d tokens", len(tokens.digests))
        if self._observer is not None:
            self._observer.tokens_loaded(len(tokens.digests))

    def _fail(self, signature: tuple[int, int, int] | None, reason: str) -> None:
        """Refuse every token; log and count once per change of the file."""
        if self._digests or signature != self._signature:
            _log.error("tokens file unusable, every token is refused until it is fixed: %s", reason)
            if self._observer is not None:
                self._observer.reload_failed()
                self._observer.tokens_loaded(0)
        self._digests, self._names, self._signature = (), (), signature
        self._by_digest = {}

    @property
    def principal_names(self) -> tuple[str, ...]:
        """The principal names of the tokens accepted now."""
        return self._names

    def check(self, metadata: Iterable[tuple[str, str | bytes]]) -> TokenCheck:
        """Whether the metadata carries a known bearer token, none, or another one."""
        return self.identify(metadata)[0]

    def identify(self, metadata: Iterable[tuple[str, str | bytes]]) -> tuple[TokenCheck, str]:
        """`check`, and the principal name of the token when it is valid (else "")."""
        self._refresh()
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return TokenCheck.INVALID, ""
                name = self._by_digest.get(hashlib.sha256(token.strip().encode()).digest())
                if name is None:
                    return TokenCheck.INVALID, ""
                return TokenCheck.VALID, name
        return TokenCheck.MISSING, ""
