"""The tokens file fails closed: a reload that finds it unusable refuses every token."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from service.infrastructure.auth import TokenAuthenticator, TokenCheck
from service.infrastructure.config import read_tokens
from service.infrastructure.observability.metrics import Metrics
from tests.support.fakes import ManualClock

TOKEN = "tok-unit-7c1e-4b9d0a2f"  # noqa: S105 (a throwaway test value)
OTHER = "tok-unit-other-92ab"


def bearer(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    return ManualClock.patch(monkeypatch, "service.infrastructure.auth.time.monotonic")


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def break_empty(path: Path) -> None:
    path.write_text("")


def break_comments_only(path: Path) -> None:
    path.write_text("# every token revoked\n\n")


def break_missing(path: Path) -> None:
    path.unlink()


def break_malformed(path: Path) -> None:
    path.write_text(f"{TOKEN}\nsha256:not-hex\n")


def break_unreadable(path: Path) -> None:
    path.write_bytes(b"\xff\xfe not utf-8\n")


@pytest.mark.parametrize(
    "break_file",
    [break_empty, break_comments_only, break_missing, break_malformed, break_unreadable],
    ids=lambda function: function.__name__.removeprefix("break_"),
)
def test_an_unusable_file_refuses_every_token_until_it_is_valid_again(
    tmp_path: Path, clock: ManualClock, json_log: io.StringIO, break_file: Callable[[Path], None]
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\n{OTHER}\n")
    metrics = Metrics()
    authenticator = TokenAuthenticator(read_tokens(str(path)), reload_seconds=1.0)
    authenticator.report_to(metrics)
    assert authenticator.check(bearer(TOKEN)) is TokenCheck.VALID
    assert sample(metrics, "todo_auth_tokens") == 2

    break_file(path)
    clock.now += 1.0
    assert authenticator.check(bearer(TOKEN)) is TokenCheck.INVALID
    assert authenticator.check(bearer(OTHER)) is TokenCheck.INVALID
    assert authenticator.token_count == 0
    assert sample(metrics, "todo_auth_tokens") == 0
    assert sample(metrics, "todo_auth_tokens_reload_failures_total") == 1
    errors = [json.loads(line) for line in json_log.getvalue().splitlines() if '"ERROR"' in line]
    assert len(errors) == 1, json_log.getvalue()
    assert "every token is refused" in errors[0]["message"]
    assert TOKEN not in json_log.getvalue()

    clock.now += 1.0  # still broken: refused, but not logged or counted again
    assert authenticator.check(bearer(TOKEN)) is TokenCheck.INVALID
    assert sample(metrics, "todo_auth_tokens_reload_failures_total") == 1

    path.write_text(f"{OTHER}\n")
    clock.now += 1.0
    assert authenticator.check(bearer(OTHER)) is TokenCheck.VALID
    assert authenticator.check(bearer(TOKEN)) is TokenCheck.INVALID
    assert sample(metrics, "todo_auth_tokens") == 1


def test_a_removed_token_is_refused_at_the_next_check_not_before(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\n{OTHER}\n")
    authenticator = TokenAuthenticator(read_tokens(str(path)), reload_seconds=5.0)
    path.write_text(f"{OTHER}\n")
    clock.now += 4.9
    assert authenticator.check(bearer(TOKEN)) is TokenCheck.VALID  # within the interval: not re-read yet
    clock.now += 0.1
    assert authenticator.check(bearer(TOKEN)) is TokenCheck.INVALID
    assert authenticator.check(bearer(OTHER)) is TokenCheck.VALID


def test_an_unreadable_file_refuses_every_token(tmp_path: Path, clock: ManualClock) -> None:
    if os.geteuid() == 0:
        # root reads a 0000 file anyway; the unreadable case is covered by invalid UTF-8 above
        path = tmp_path / "tokens"
        path.write_text(f"{TOKEN}\n")
        authenticator = TokenAuthenticator(read_tokens(str(path)), reload_seconds=1.0)
        path.unlink()
        path.mkdir()  # a directory where the file was: open() fails
    else:
        path = tmp_path / "tokens"
        path.write_text(f"{TOKEN}\n")
        authenticator = TokenAuthenticator(read_tokens(str(path)), reload_seconds=1.0)
        path.write_text(f"{TOKEN}\n{OTHER}\n")
        path.chmod(0)
    clock.now += 1.0
    assert authenticator.check(bearer(TOKEN)) is TokenCheck.INVALID
