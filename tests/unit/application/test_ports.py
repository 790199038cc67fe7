"""The production ids and incarnations (the use-case tests run on sequential fakes)."""

from __future__ import annotations

import re

from service.application.ports import RandomIdGenerator


def test_ids_are_32_hex_characters_and_never_repeat_in_a_sample() -> None:
    ids = [RandomIdGenerator().new_id() for _ in range(10_000)]

    assert all(re.fullmatch(r"[0-9a-f]{32}", entry_id) for entry_id in ids)
    assert len(set(ids)) == len(ids)


def test_incarnations_are_8_hex_characters_and_spread() -> None:
    incarnations = [RandomIdGenerator().new_incarnation() for _ in range(10_000)]

    assert all(re.fullmatch(r"[0-9a-f]{8}", incarnation) for incarnation in incarnations)
    # 32 random bits: among 10,000 draws a few collisions at most (expected ~0.01).
    assert len(set(incarnations)) >= len(incarnations) - 3
