"""Page tokens: round trip, tamper evidence, binding to the filters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from service.application.page_token import MAX_TOKEN_CHARS, PageTokenCodec, key_id
from service.domain.errors import ValidationError
from service.domain.repository import Cursor

CURSOR = Cursor(created_at=datetime(2026, 1, 1, 12, 0, 0, 123_000, tzinfo=UTC), entry_id="id-0042")
FINGERPRINT = PageTokenCodec.fingerprint("milk", frozenset({"home", "work"}), None)
URLSAFE_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def codec() -> PageTokenCodec:
    return PageTokenCodec(b"k")


def rejected_field(codec: PageTokenCodec, token: str, fingerprint: str = FINGERPRINT) -> str:
    with pytest.raises(ValidationError) as caught:
        codec.decode(token, fingerprint)
    [violation] = caught.value.violations
    return violation.field


class TestRoundTrip:
    def test_decode_returns_the_encoded_cursor(self, codec: PageTokenCodec) -> None:
        token = codec.encode(CURSOR, FINGERPRINT)

        assert codec.decode(token, FINGERPRINT) == CURSOR

    def test_decoded_time_is_utc(self, codec: PageTokenCodec) -> None:
        decoded = codec.decode(codec.encode(CURSOR, FINGERPRINT), FINGERPRINT)

        assert decoded.created_at.utcoffset() == timedelta(0)

    def test_ids_with_quotes_and_unicode_survive(self, codec: PageTokenCodec) -> None:
        cursor = Cursor(created_at=CURSOR.created_at, entry_id='we"ird\\ïd')

        assert codec.decode(codec.encode(cursor, FINGERPRINT), FINGERPRINT) == cursor

    def test_times_before_the_epoch_survive(self, codec: PageTokenCodec) -> None:
        cursor = Cursor(created_at=datetime(1969, 7, 20, 20, 17, 40, 5_000, tzinfo=UTC), entry_id="a")

        assert codec.decode(codec.encode(cursor, FINGERPRINT), FINGERPRINT) == cursor

    def test_token_is_url_safe_without_padding(self, codec: PageTokenCodec) -> None:
        token = codec.encode(CURSOR, FINGERPRINT)

        assert token
        assert set(token) <= set(URLSAFE_B64_ALPHABET)

    def test_an_empty_secret_is_refused(self) -> None:
        with pytest.raises(ValueError, match="must not be empty"):
            PageTokenCodec(b"")


class TestTamperDetection:
    def test_a_character_flipped_in_the_middle_is_rejected(self, codec: PageTokenCodec) -> None:
        token = codec.encode(CURSOR, FINGERPRINT)
        middle = len(token) // 2
        flipped = "B" if token[middle] == "A" else "A"

        assert rejected_field(codec, token[:middle] + flipped + token[middle + 1 :]) == "page_token"

    def test_a_character_changed_anywhere_is_rejected(self, codec: PageTokenCodec) -> None:
        # The module promises that "a token that was altered ... is rejected".
        token = codec.encode(CURSOR, FINGERPRINT)
        accepted: list[str] = []
        for index, original in enumerate(token):
            for replacement in URLSAFE_B64_ALPHABET:
                if replacement == original:
                    continue
                altered = token[:index] + replacement + token[index + 1 :]
                try:
                    codec.decode(altered, FINGERPRINT)
                except ValidationError:
                    continue
                accepted.append(altered)

        assert accepted == []

    @pytest.mark.parametrize("keep", [0, 1, 10, 21, -1])
    def test_a_truncated_token_is_rejected(self, codec: PageTokenCodec, keep: int) -> None:
        token = codec.encode(CURSOR, FINGERPRINT)

        assert rejected_field(codec, token[:keep]) == "page_token"

    @pytest.mark.parametrize("garbage", ["garbage", "!!!!", "a", "====", "é", "eyJ2IjoxfQ", " "])
    def test_garbage_is_rejected(self, codec: PageTokenCodec, garbage: str) -> None:
        assert rejected_field(codec, garbage) == "page_token"

    def test_a_token_signed_with_another_secret_is_rejected(self, codec: PageTokenCodec) -> None:
        foreign = PageTokenCodec(b"another secret").encode(CURSOR, FINGERPRINT)

        assert rejected_field(codec, foreign) == "page_token"

    def test_the_violation_names_the_given_field(self, codec: PageTokenCodec) -> None:
        with pytest.raises(ValidationError) as caught:
            codec.decode("garbage", FINGERPRINT, field="request.page_token")

        assert [v.field for v in caught.value.violations] == ["request.page_token"]


class TestFingerprint:
    def test_a_token_replayed_with_other_filters_is_rejected(self, codec: PageTokenCodec) -> None:
        token = codec.encode(CURSOR, FINGERPRINT)
        other = PageTokenCodec.fingerprint("bread", frozenset({"home", "work"}), None)

        with pytest.raises(ValidationError) as caught:
            codec.decode(token, other)

        [violation] = caught.value.violations
        assert violation.field == "page_token"
        assert "other filters" in violation.description

    def test_fingerprint_ignores_tag_order(self) -> None:
        assert PageTokenCodec.fingerprint("", frozenset({"a", "b"}), True) == PageTokenCodec.fingerprint(
            "", frozenset({"b", "a"}), True
        )

    @pytest.mark.parametrize(
        ("search", "tags", "done"),
        [
            ("Milk", frozenset({"home", "work"}), None),
            ("milk", frozenset({"home"}), None),
            ("milk", frozenset({"home", "work"}), True),
            ("milk", frozenset({"home", "work"}), False),
            ("", frozenset(), None),
        ],
    )
    def test_fingerprint_differs_for_other_filters(self, search: str, tags: frozenset[str], done: bool | None) -> None:
        assert PageTokenCodec.fingerprint(search, tags, done) != FINGERPRINT

    def test_done_false_and_done_absent_differ(self) -> None:
        assert PageTokenCodec.fingerprint("", frozenset(), False) != PageTokenCodec.fingerprint("", frozenset(), None)


def forged(codec_secret: bytes, payload: bytes) -> str:
    """A token over any payload, signed with the secret (as someone who knows it would)."""
    mac = hmac.new(codec_secret, payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


class TestForgeries:
    """A valid signature proves only who signed: every payload is checked (issue: forged tokens -> INTERNAL)."""

    @pytest.mark.parametrize(
        "payload",
        [
            b"[" * 5000 + b"]" * 5000,
            b"[" * 300 + b"]" * 300,
            b'[1,0,"\\ud800","x"]',  # a lone surrogate as the cursor id
            b'[1,0,"\xff\xfe","x"]',  # invalid UTF-8
            b'[1,"0","id","x"]',
            b'[1,1e308,"id","x"]',
            b'[1,true,"id","x"]',
            b'[true,0,"id","x"]',
            b"[1," + b"9" * 5000 + b',"id","x"]',  # an integer too long to parse
            b'[1,99999999999999999999,"id","x"]',  # past datetime's range
            b'[1,0,"","x"]',
            b'[1,0,"' + b"a" * 129 + b'","x"]',
            b'[1,0,"id",7]',
            b'[1,0,"id"]',
            b'{"a":1}',
            b"null",
            b"",
        ],
        ids=lambda payload: payload[:24].decode("latin-1"),
    )
    def test_a_well_signed_malformed_payload_is_invalid_argument(self, codec: PageTokenCodec, payload: bytes) -> None:
        assert rejected_field(codec, forged(b"k", payload)) == "page_token"

    def test_a_token_longer_than_any_issued_is_refused_unread(self, codec: PageTokenCodec) -> None:
        longest = codec.encode(Cursor(created_at=CURSOR.created_at, entry_id="\u00ef" * 128), FINGERPRINT)
        assert len(longest) <= MAX_TOKEN_CHARS, "every token the service issues fits the cap"
        assert codec.decode(longest, FINGERPRINT).entry_id == "\u00ef" * 128
        assert rejected_field(codec, "A" * (MAX_TOKEN_CHARS + 1)) == "page_token"


class TestKeyRotation:
    """Tokens name their key: a list of keys verifies every one of them, and tokens of version 1 still work."""

    OLD, NEW = b"old-key-7f0c2a9e41b3d8", b"new-key-2b9d71e0c4a65f"
    CURSOR = Cursor(created_at=datetime(2026, 5, 1, tzinfo=UTC), entry_id="e1")

    def test_the_first_key_signs_and_every_key_verifies(self) -> None:
        old_token = PageTokenCodec(self.OLD).encode(self.CURSOR, "f")
        rotating = PageTokenCodec([self.NEW, self.OLD])
        assert rotating.decode(old_token, "f") == self.CURSOR  # outstanding tokens survive the rotation
        new_token = rotating.encode(self.CURSOR, "f")
        assert PageTokenCodec([self.OLD, self.NEW]).decode(new_token, "f") == self.CURSOR  # a replica not yet moved
        with pytest.raises(ValidationError):
            PageTokenCodec(self.OLD).decode(new_token, "f")  # a key nobody gave this replica
        payload = base64.urlsafe_b64decode(new_token + "=" * (-len(new_token) % 4))[16:]
        assert json.loads(payload)[:2] == [2, key_id(self.NEW)]

    def test_a_token_of_version_1_is_still_accepted(self) -> None:
        payload = json.dumps([1, 1777593600000, "e1", "f"], separators=(",", ":")).encode()
        mac = hmac.new(self.OLD, payload, hashlib.sha256).digest()[:16]
        legacy = base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")
        assert PageTokenCodec([self.NEW, self.OLD]).decode(legacy, "f") == self.CURSOR
