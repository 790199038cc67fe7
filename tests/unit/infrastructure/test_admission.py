"""Admission: the cap on todo.v1.TodoService calls in progress, its refusal count and its shedding log lines."""

from __future__ import annotations

import logging

import pytest

from service.infrastructure.grpc.admission import QUIET_SECONDS, Admission
from tests.support.fakes import ManualClock


class Refusals:
    def __init__(self) -> None:
        self.points: list[tuple[str, str]] = []

    def overload_refused(self, point: str, reason: str = "CONCURRENCY_LIMIT_REACHED") -> None:
        self.points.append((point, reason))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    return ManualClock.patch(monkeypatch, "service.infrastructure.grpc.admission.time.monotonic")


def test_calls_over_the_limit_are_refused_and_counted_until_a_slot_is_left() -> None:
    refusals = Refusals()
    admission = Admission(2, counter=refusals)
    assert [admission.try_enter() for _ in range(4)] == [True, True, False, False]
    assert admission.in_flight == 2
    assert refusals.points == [("admission", "CONCURRENCY_LIMIT_REACHED")] * 2
    admission.leave()
    assert admission.try_enter()
    assert not admission.try_enter()
    assert len(refusals.points) == 3


def test_shedding_logs_one_line_when_it_starts_and_one_when_it_has_been_quiet(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    admission = Admission(1)
    caplog.set_level(logging.INFO, logger="service.overload")
    assert admission.try_enter()
    for _ in range(1000):  # a flood: one line, not a thousand
        assert not admission.try_enter()
        clock.now += 0.001
    started = [r for r in caplog.records if "shedding started" in r.getMessage()]
    assert len(started) == 1
    assert started[0].levelno == logging.WARNING
    admission.leave()
    clock.now += QUIET_SECONDS / 2
    assert admission.try_enter()  # admitted, but refusals were too recent to call it over
    assert not any("shedding stopped" in r.getMessage() for r in caplog.records)
    admission.leave()
    clock.now += QUIET_SECONDS
    assert admission.try_enter()
    (stopped,) = [r for r in caplog.records if "shedding stopped" in r.getMessage()]
    assert stopped.getMessage().startswith("overload: shedding stopped: 1000 calls refused")
    assert not admission.try_enter()  # the slot is held: a second spell begins, with its own line
    assert len([r for r in caplog.records if "shedding started" in r.getMessage()]) == 2


def test_a_limit_below_one_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="limit must be positive"):
        Admission(0)
