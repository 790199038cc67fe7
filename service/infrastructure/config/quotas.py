"""Per-principal quota overrides (TODO_QUOTA_FILE), read with the configuration.

A JSON object: `{"principals": {"<principal>": {"max_concurrent_rpcs": 4,
"rate_per_second": 20, "burst": 40}}}`. Each field is optional and replaces
the default for that principal (TODO_MAX_CONCURRENT_RPCS_PER_PRINCIPAL,
TODO_RATE_PER_PRINCIPAL; `burst` defaults to one second of the rate, at
least 1); 0 means no limit of that kind for the principal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.infrastructure.config.credentials import read_text
from service.infrastructure.config.reader import ConfigError, Described

MAX_QUOTA_FILE_BYTES = 1024 * 1024
MAX_QUOTA_NUMBER = 1_000_000  # as the environment's rows allow
MIN_RATE = 0.001  # calls per second; below it a refusal's RetryInfo (seconds until a token) would overflow


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """One principal's limits: calls in progress (0: none) and a rate in calls per second (0: none) with a burst."""

    max_concurrent_rpcs: int = 0
    rate_per_second: float = 0.0
    burst: float = 0.0

    def with_burst(self) -> QuotaLimits:
        burst = self.burst or max(1.0, self.rate_per_second)
        return QuotaLimits(self.max_concurrent_rpcs, self.rate_per_second, burst)


def _number(raw: Mapping[str, Any], key: str, where: str, whole: bool) -> float | None:
    if key not in raw:
        return None
    value = raw[key]
    # Finite and bounded like the environment's rows: NaN, Infinity and 1e400 are refused, not read as "no limit"
    # or an overflow; a rate is 0 (none) or at least MIN_RATE, so a refusal's RetryInfo stays finite.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_QUOTA_NUMBER
        or (whole and value != int(value))
        or (key == "rate_per_second" and 0 < value < MIN_RATE)
    ):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(
            f"{where}.{key} must be {kind}, 0 or more (at most {MAX_QUOTA_NUMBER:,}; a rate 0 or {MIN_RATE:g}+)"
        )
    return float(value)


def parse_quotas(text: str) -> dict[str, dict[str, float]]:
    """The overrides of a quota file, per principal: the fields it sets (ConfigError saying what is wrong)."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply for the parser
        raise ConfigError(f"is not valid JSON: {error}") from None
    if not isinstance(raw, dict) or set(raw) - {"principals"} or not isinstance(raw.get("principals"), dict):
        raise ConfigError('must hold {"principals": {"<principal>": {...}}}')
    overrides: dict[str, dict[str, float]] = {}
    for name, fields in raw["principals"].items():
        where = f"principals[{name!r}]"
        if not isinstance(fields, dict):
            raise ConfigError(f"{where} must be an object")
        unknown = sorted(set(fields) - {"max_concurrent_rpcs", "rate_per_second", "burst"})
        if unknown:
            raise ConfigError(f"{where} has unknown field(s) {', '.join(unknown)}")
        read = {
            key: number
            for key, whole in (("max_concurrent_rpcs", True), ("rate_per_second", False), ("burst", False))
            if (number := _number(fields, key, where, whole)) is not None
        }
        overrides[name] = read
    return overrides


def read_quotas(path: str) -> dict[str, dict[str, float]]:
    return parse_quotas(read_text(path, MAX_QUOTA_FILE_BYTES))


QUOTA_FILE = Described(read_quotas, "path of a JSON file of per-principal quotas")
