"""Opaque, tamper-evident page tokens for keyset paging.

A token carries the position after which the next page starts and a
fingerprint of the filters it was issued for, signed with HMAC-SHA256. A token
that was altered, or that is replayed with other filters, is rejected.

Keys rotate without breaking outstanding tokens: the codec holds a list of
keys, signs with the first and verifies with any; a token names the key that
signed it (a key id: 8 hex digits of a hash of the key), so verification needs
one MAC. Tokens of version 1 (before key ids) are tried against every key.
Rotation: give every replica the new key second (it verifies), then first (it
signs), then drop the old one once its tokens have expired from use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from service.domain.errors import ValidationError
from service.domain.repository import Cursor
from service.domain.todo_entry import MAX_ID_LENGTH, from_millis, millis

_VERSION = 2  # [2, key id, created ms, id, fingerprint]; 1: [1, created ms, id, fingerprint], no key id
_LEGACY_VERSION = 1
_KEY_ID_CHARS = 8
_MAC_BYTES = 16
_MIN_MILLIS = millis(datetime(1, 1, 1, tzinfo=UTC))
_MAX_MILLIS = millis(datetime(9999, 12, 31, tzinfo=UTC))
# The longest token this service issues: a MAC and a JSON array of the
# version, a time of at most 15 characters, an id of at most 128 characters
# (6 bytes each when JSON escapes them) and a 16-character fingerprint, in
# unpadded base64: about 1.1 KB. Anything longer is refused before it is decoded.
MAX_TOKEN_CHARS = (
    4 * (_MAC_BYTES + len('[2,"",-99999999999999,"",""]') + _KEY_ID_CHARS + 6 * MAX_ID_LENGTH + 16 + 2) // 3 + 4
)


def key_id(key: bytes) -> str:
    """The id a token carries for the key that signed it (not secret: a hash of the key, 32 bits of it)."""
    return hashlib.sha256(b"todo page token key id\0" + key).hexdigest()[:_KEY_ID_CHARS]


class PageTokenCodec:
    """Encodes and checks page tokens with a secret key."""

    def __init__(self, secret: bytes | Sequence[bytes]) -> None:
        """`secret`: one key, or several: the first signs, every one verifies."""
        keys = [secret] if isinstance(secret, bytes) else list(secret)
        if not keys or not all(keys):
            raise ValueError("the page token keys must not be empty")
        self._secret = keys[0]
        self._key_id = key_id(keys[0])
        self._keys = {key_id(key): key for key in keys}
        self._all = tuple(keys)

    @staticmethod
    def fingerprint(search: str, tags: frozenset[str], done: bool | None) -> str:
        """A short digest of the filters a token belongs to."""
        canonical = json.dumps([search, sorted(tags), done], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def encode(self, cursor: Cursor, fingerprint: str) -> str:
        payload = json.dumps(
            [_VERSION, self._key_id, millis(cursor.created_at), cursor.entry_id, fingerprint],
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
        if len(mac) != _MAC_BYTES or not self._signed(mac, payload):
            raise invalid
        cursor, token_fingerprint = _parse(payload)
        if cursor is None:
            raise invalid
        if token_fingerprint != fingerprint:
            raise ValidationError.single(field, "was issued for other filters than this request's")
        return cursor

    def _signed(self, mac: bytes, payload: bytes) -> bool:
        """Whether `mac` is the MAC of `payload` under the key it names (version 1: under any key)."""
        named = _key_id_of(payload)
        candidates = self._all if named is None else (self._keys.get(named),)
        matched = False
        for key in candidates:
            if key is not None:
                expected = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
                matched |= hmac.compare_digest(mac, expected)
        return matched


def _key_id_of(payload: bytes) -> str | None:
    """The key id a version-2 payload names (read before the MAC is checked: only to pick the key), else None."""
    prefix = f'[{_VERSION},"'.encode()
    if payload.startswith(prefix) and payload[len(prefix) + _KEY_ID_CHARS : len(prefix) + _KEY_ID_CHARS + 2] == b'",':
        return payload[len(prefix) : len(prefix) + _KEY_ID_CHARS].decode("ascii", "replace")
    return None


def _parse(payload: bytes) -> tuple[Cursor | None, str]:
    """The cursor and fingerprint of a payload, or (None, "") when it is not one we wrote."""
    try:
        fields = json.loads(payload)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and oversized integers
        return None, ""
    if isinstance(fields, list) and len(fields) == 5 and fields[0] == _VERSION and isinstance(fields[1], str):
        fields = [_LEGACY_VERSION, *fields[2:]]  # the key id was used to pick the key; the rest reads alike
    if not (isinstance(fields, list) and len(fields) == 4):
        return None, ""
    version, created_ms, entry_id, fingerprint = fields
    if type(version) is not int or version != _LEGACY_VERSION or type(created_ms) is not int:
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
