"""The contract's ErrorReason enum and what the server sends agree.

- Only reasons of the enum can be sent: the encoder takes an enum value and
  names it through the enum (an unknown number raises), and every end-to-end
  test decodes errors through `tests/support/rich_status.decode`, which checks the
  reason, the domain and the status code against a table written out there;
  that table is checked here against the contract's options, as the proto
  file states them.
- The error table of docs/api.md lists every reason with the status code the
  contract gives it, and nothing else.
- Every value is reachable: each one names the test that makes a real server
  send it and asserts it (checked here: the test exists and asserts that
  reason), or is listed as reserved.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from service.infrastructure.grpc.errors import ERROR_DOMAIN, rich_status, status_code
from tests.support.docs import page, section, table_rows
from tests.support.rich_status import DOMAIN, REASON_CODES
from todo.v1 import error_reason_pb2
from todo.v1 import todo_service_pb2 as pb
from todo.v1.error_reason_pb2 import ErrorReason

ROOT = Path(__file__).resolve().parents[2]
SENT = [name for name in ErrorReason.keys() if name != "ERROR_REASON_UNSPECIFIED"]  # noqa: SIM118 (not a dict)
RESERVED: frozenset[str] = frozenset()  # values kept for compatibility that nothing sends any more

E2E = "tests/e2e/"
CLIENT = "tests/client/"
REACHED_BY = {  # reason -> (test file, test function)
    "FIELD_VIOLATION": (E2E + "test_todo_api.py", "test_unknown_path_is_invalid_argument"),
    "MALFORMED_REQUEST": (E2E + "test_todo_api.py", "test_malformed_request_bytes_are_invalid_argument"),
    "TODO_NOT_FOUND": (CLIENT + "test_errors.py", "test_missing_entry_is_not_found_for_every_method"),
    "TODO_ALREADY_EXISTS": (
        E2E + "test_todo_api.py",
        "test_client_chosen_id_is_used_and_a_taken_one_is_already_exists",
    ),
    "CONCURRENT_MODIFICATION": (E2E + "test_todo_api.py", "test_stale_etag_is_aborted_and_changes_nothing"),
    "STORE_UNAVAILABLE": (
        CLIENT + "test_errors.py",
        "test_store_unavailable_is_retried_then_unavailable_with_its_reason",
    ),
    "STORE_TIMEOUT": ("tests/faults/test_slow_database.py", "test_a_hung_database_is_bounded_by_the_rpc_deadline"),
    "BEARER_TOKEN_MISSING": (E2E + "test_security.py", "test_tokens_guard_the_api_but_not_health"),
    "BEARER_TOKEN_INVALID": (E2E + "test_security.py", "test_tokens_guard_the_api_but_not_health"),
    "CONCURRENCY_LIMIT_REACHED": (
        E2E + "test_operability.py",
        "test_excess_concurrent_rpcs_are_refused_at_once_with_unavailable_and_pushback",
    ),
    "POLICY_DENIED": (E2E + "test_authz.py", "test_a_policy_over_tokens_lets_the_reader_read_only"),
    "QUOTA_EXCEEDED": (E2E + "test_authz.py", "test_a_principal_over_its_share_is_refused_and_others_keep_theirs"),
    "WATCH_LIMIT_REACHED": (
        E2E + "test_control_plane.py",
        "test_one_client_cannot_hold_every_watch_stream_and_others_still_health_check",
    ),
    "REQUEST_TOO_LARGE": (E2E + "test_control_plane.py", "test_unknown_names_are_not_kept_and_check_says_why"),
    "HEALTH_SERVICE_UNKNOWN": (E2E + "test_control_plane.py", "test_unknown_names_are_not_kept_and_check_says_why"),
    "STREAM_REQUEST_LIMIT_REACHED": (
        E2E + "test_control_plane.py",
        "test_a_reflection_stream_answers_a_bounded_number_of_questions",
    ),
    "RESPONSE_TOO_LARGE": (
        E2E + "test_large_pages.py",
        "test_a_response_over_the_send_limit_is_refused_and_recorded_as_refused",
    ),
    "METHOD_NOT_FOUND": (E2E + "test_control_plane.py", "test_an_unknown_method_is_unimplemented_with_its_reason"),
    "UNHANDLED_EXCEPTION": (
        E2E + "test_internal_errors.py",
        "test_unexpected_exception_is_generic_internal_and_the_server_keeps_serving",
    ),
}


def _function_source(path: str, name: str) -> str:
    source = (ROOT / path).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return ast.get_source_segment(source, node) or ""
    raise AssertionError(f"{path}::{name} does not exist")


def test_every_reason_is_reached_by_a_test_or_reserved() -> None:
    assert set(REACHED_BY) | RESERVED == set(SENT), "a reason without a test that reaches it, or a stale entry"
    assert not set(REACHED_BY) & RESERVED


@pytest.mark.parametrize("reason", sorted(REACHED_BY))
def test_the_named_test_asserts_the_reason(reason: str) -> None:
    assert f'"{reason}"' in _function_source(*REACHED_BY[reason])


@pytest.mark.parametrize("reason", SENT)
def test_every_reason_has_a_status_code_and_says_more_than_it(reason: str) -> None:
    value = ErrorReason.Value(reason)
    code = status_code(value)
    assert code is not grpc.StatusCode.OK
    assert reason != code.name, "a reason that only repeats its status code tells the caller nothing"


def test_the_domain_is_the_contract_package() -> None:
    assert ERROR_DOMAIN == pb.DESCRIPTOR.package == DOMAIN


def contract_codes() -> dict[str, grpc.StatusCode]:
    """Each reason of error_reason.proto with its `status_code` option, read from the descriptor."""
    codes = {}
    for value in ErrorReason.DESCRIPTOR.values:
        if value.name != "ERROR_REASON_UNSPECIFIED":
            number = value.GetOptions().Extensions[error_reason_pb2.status_code]
            codes[value.name] = next(code for code in grpc.StatusCode if code.value[0] == number)
    return codes


def test_the_tests_written_out_codes_are_the_contracts() -> None:
    """tests/support/rich_status.REASON_CODES, which every decoded error is checked against, is the proto's."""
    assert contract_codes() == REASON_CODES


def test_the_documented_error_table_is_the_contracts() -> None:
    """docs/api.md's table (status, reason, when): one row per reason, with the status code of the proto."""
    table = table_rows(section(page("docs/api.md"), "## Errors"))
    assert table[0][:2] == ["status", "`ErrorInfo.reason`"]
    documented = {reason.strip("`"): status.strip("`") for status, reason, _when in table[1:]}
    assert len(documented) == len(table) - 1, "a reason has two rows"
    assert documented == {reason: code.name for reason, code in contract_codes().items()}


def test_the_encoder_cannot_send_a_reason_outside_the_enum() -> None:
    with pytest.raises(ValueError, match="999"):
        rich_status(999, "made up")  # type: ignore[arg-type]


def test_every_domain_error_class_is_in_the_error_table() -> None:
    """A DomainError subclass missing from ERROR_TABLE would reach the caller as INTERNAL: every one is listed."""
    import service.domain.errors as domain_errors  # noqa: PLC0415 (the module whose classes are walked)
    from service.domain.errors import DomainError  # noqa: PLC0415
    from service.infrastructure.grpc.errors import ERROR_TABLE  # noqa: PLC0415

    classes = {
        value
        for value in vars(domain_errors).values()
        if isinstance(value, type) and issubclass(value, DomainError) and value is not DomainError
    }
    assert classes
    missing = {kind.__name__ for kind in classes if not any(issubclass(kind, listed) for listed in ERROR_TABLE)}
    assert missing == set()
