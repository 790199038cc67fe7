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
from datetime import UTC, datetime

from service.domain.errors import ValidationError
from service.domain.repository import Cursor
from service.domain.todo_entry import MAX_ID_LENGTH, from_millis, millis

_VERSION = 1
_MAC_BYTES = 16
_MIN_MILLIS = millis(datetime(1, 1, 1, tzinfo=UTC))
_MAX_MILLIS = millis(datetime(9999, 12, 31, tzinfo=UTC))
# The longest token this service issues: a MAC and a JSON array of the
# version, a time of at most 15 characters, an id of at most 128 characters
# (6 bytes each when JSON escapes them) and a 16-character fingerprint, in
# unpadded base64: about 1.1 KB. Anything longer is refused before it is decoded.
MAX_TOKEN_CHARS = 4 * (_MAC_BYTES + len('[1,-99999999999999,"",""]') + 6 * MAX_ID_LENGTH + 16 + 2) // 3 + 4


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
        """The cursor in `token`, or a ValidationError naming `field`.

        Bounded before any work: a token longer than any this service issues is
        refused unread, and everything in a well-signed payload is checked for
        type and range, since a signature only proves who made the token (and
        the secret may be a well-known default).
        """
        invalid = ValidationError.single(field, "is not a page token this service issued")
        if len(token) > MAX_TOKEN_CHARS:
            raise invalid
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
        cursor, token_fingerprint = _parse(payload)
        if cursor is None:
            raise invalid
        if token_fingerprint != fingerprint:
            raise ValidationError.single(field, "was issued for other filters than this request's")
        return cursor


def _parse(payload: bytes) -> tuple[Cursor | None, str]:
    """The cursor and fingerprint of a payload, or (None, "") when it is not one we wrote."""
    try:
        fields = json.loads(payload)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and oversized integers
        return None, ""
    if not (isinstance(fields, list) and len(fields) == 4):
        return None, ""
    version, created_ms, entry_id, fingerprint = fields
    if type(version) is not int or version != _VERSION or type(created_ms) is not int:
        return None, ""
    if not (_MIN_MILLIS <= created_ms <= _MAX_MILLIS and isinstance(entry_id, str) and isinstance(fingerprint, str)):
        return None, ""
    if not 0 < len(entry_id) <= MAX_ID_LENGTH or not _encodable(entry_id):
        return None, ""
    return Cursor(created_at=from_millis(created_ms), entry_id=entry_id), fingerprint


def _encodable(text: str) -> bool:
    """False for strings holding lone surrogates (JSON can smuggle them in as escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
