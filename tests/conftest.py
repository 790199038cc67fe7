"""Fixtures shared by every suite."""

from __future__ import annotations

import pytest

from tests.support import FakeClock, SequentialIds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds()
