"""3 alone (optional, not in `make bench`): B0 GetTodo on the pinned, the newest and BENCH_GRPCIO_EXTRA releases.

`venvs` (a venv per grpcio release, for B0) is shared with the in-memory section, which runs B0 on the
same releases next to the service.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from benchmarks import service_api
from benchmarks.common import BENCH, CONTENT, PINNED_GRPCIO, REPO, TAGS, Report
from benchmarks.context import Bench
from benchmarks.environment import installed_version, latest_version, make_venv
from benchmarks.launch import start_b0
from benchmarks.measure import Results, alternate, grpc_side, ratio, section_report
from benchmarks.procs import run_text
from todo.v1 import todo_service_pb2 as pb


def venvs(bench: Bench, report: Report) -> dict[str, str]:
    """Python of a venv per grpcio release for B0: the pinned one (.venv), the newest, BENCH_GRPCIO_EXTRA."""
    uv = bench.options.uv
    latest = bench.options.grpcio_latest or latest_version(uv, "grpcio")
    pythons = {PINNED_GRPCIO: bench.python}
    for version in [latest, *bench.options.grpcio_extra]:
        if version not in pythons:
            # B0 needs grpcio only; protobuf is installed (newest) to check whether the generated code imports.
            venv = BENCH / f".venv-grpcio-{version}"
            uvloop = service_api.default_event_loop() == "uvloop"
            extra = [f"uvloop=={installed_version(bench.python, 'uvloop')}"] if uvloop else []
            pythons[version] = str(make_venv(uv, venv, [f"grpcio=={version}", "protobuf", *extra]))
    generated_check = {}
    for version, python in pythons.items():
        code = (
            f"import sys; sys.path.insert(0, {str(REPO / 'generated')!r}); "
            "import google.protobuf, grpc; from todo.v1 import todo_service_pb2, todo_service_pb2_grpc; "
            "print('imports with protobuf', google.protobuf.__version__)"
        )
        generated_check[version] = {
            "protobuf": installed_version(python, "protobuf"),
            "generated_code": run_text([python, "-c", code]).splitlines()[-1][:300],
        }
    report["grpcio"] = {
        "pinned": PINNED_GRPCIO,
        "latest": latest,
        "extra": bench.options.grpcio_extra,
        "venvs": generated_check,
    }
    return pythons


def _version_key(version: str) -> list[int]:
    return [int(part) for part in version.split(".")]


def run(bench: Bench, report: Report) -> None:
    pythons = venvs(bench, report)
    responses = bench.work / "b0-responses"
    responses.mkdir(exist_ok=True)
    todo = pb.Todo(
        id="0123456789abcdef0123456789abcdef", content=CONTENT, tags=sorted(TAGS), etag='"1-19ad3f1a2bb"',
        create_time=Timestamp(seconds=1764500000, nanos=123000000),
        update_time=Timestamp(seconds=1764500000, nanos=123000000),
    )  # fmt: skip
    (responses / "GetTodo.bin").write_bytes(pb.GetTodoResponse(todo=todo).SerializeToString())
    get_body = bench.body("get", pb.GetTodoRequest(id="bench-get"))
    servers = {
        version: start_b0(bench, f"b0-grpcio-{version}", python, responses) for version, python in pythons.items()
    }
    sides = [
        grpc_side(bench, f"get:b0-grpcio-{version}", f"B0 grpcio {version}", server, "GetTodo", get_body)
        for version, server in sorted(servers.items(), key=lambda item: _version_key(item[0]))
    ]
    results: Results = {}
    alternate(bench, sides, results, "grpcio")
    ratios = {
        f"B0 grpcio {version}/{PINNED_GRPCIO}": ratio(
            results, f"get:b0-grpcio-{version}", f"get:b0-grpcio-{PINNED_GRPCIO}"
        )
        for version in servers
        if version != PINNED_GRPCIO
    }
    report["grpcio_releases"] = section_report(results, sides, ratios)
