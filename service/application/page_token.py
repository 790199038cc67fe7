"""Opaque, tamper-evident page tokens for keyset paging.

A token carries the position after which the next page starts and a
fingerprint of the filters it was issued for, signed with HMAC-SHA256. A token
that was altered, or that is replayed with other filters, is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from service.domain.errors import ValidationError
from service.domain.repository import Cursor
from service.domain.todo_entry import millis

_VERSION = 1
_MAC_BYTES = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PageTokenCodec:
    """Encodes and checks page tokens with a secret key."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the page token secret must not be empty")
        self._secret = secret

    @staticmethod
    def fingerprint(search: str, tags: frozenset[str], done: bool | None) -> str:
        """A short digest of the filters a token belongs to."""
        canonical = json.dumps([search, sorted(tags), done], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def encode(self, cursor: Cursor, fingerprint: str) -> str:
        payload = json.dumps(
            [_VERSION, millis(cursor.created_at), cursor.entry_id, fingerprint],
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def decode(self, token: str, fingerprint: str, field: str = "page_token") -> Cursor:
        """The cursor in `token`, or a ValidationError naming `field`."""
        invalid = ValidationError.single(field, "is not a page token this service issued")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
            raise invalid  # extra padding or unused trailing bits: not what we issued
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise invalid
        try:
            version, created_ms, entry_id, token_fingerprint = json.loads(payload)
            if version != _VERSION or not isinstance(entry_id, str):
                raise invalid
            created_at = _EPOCH + timedelta(milliseconds=int(created_ms))
        except (ValueError, TypeError, OverflowError):
            raise invalid from None
        if token_fingerprint != fingerprint:
            raise ValidationError.single(field, "was issued for other filters than this request's")
        return Cursor(created_at=created_at, entry_id=entry_id)
