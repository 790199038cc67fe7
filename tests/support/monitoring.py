"""Real Prometheus, Alertmanager and blackbox exporter processes on loopback, and what the tests ask them.

Debian's packages (`make monitoring-tools` installs them); TODO_PROMETHEUS,
TODO_PROMTOOL, TODO_ALERTMANAGER and TODO_BLACKBOX_EXPORTER point at other
builds. None of them reports anything anywhere.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support import REPO
from tests.support.process import LoggedProcess, free_port, tool

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "todo-service.yaml"
HOW = (
    "run `make monitoring-tools` (as root it installs Debian's prometheus, prometheus-alertmanager and "
    "prometheus-blackbox-exporter)"
)
T = TypeVar("T")


def binary(variable: str, name: str) -> Path:
    return tool(variable, Path("/usr/bin") / name, HOW)


def get_json(url: str, data: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (our loopback servers)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    return json.loads(text) if text.strip() else None


def eventually(probe: Callable[[], T | None], bound: float, what: str, every: float = 0.2) -> tuple[T, float]:
    """The first non-None result of `probe` and the seconds it took; fails past `bound`."""
    start = time.monotonic()
    last: Exception | None = None
    while (elapsed := time.monotonic() - start) < bound:
        try:
            result = probe()
        except OSError as error:  # not listening yet
            last = error
            result = None
        if result is not None:
            return result, elapsed
        time.sleep(every)
    raise AssertionError(f"{what}: not within {bound:.0f}s ({last})")


class Server(LoggedProcess):
    """A monitoring server on a free loopback port, up once `ready_path` answers 200."""

    def __init__(self, argv: list[str], port: int, ready_path: str) -> None:
        super().__init__(argv, {"PATH": "/usr/bin:/bin"}, REPO)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        try:
            eventually(lambda: self._answers(ready_path), 30, f"{argv[0]} did not start:\n{self.output}")
        except AssertionError:
            self.close()
            raise

    def _answers(self, path: str) -> bool | None:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.argv[0]} exited:\n{self.output}")
        with urllib.request.urlopen(self.url + path, timeout=5) as response:  # noqa: S310
            return True if response.status == 200 else None

    def close(self) -> None:
        if self.process.poll() is None:
            self.terminate(20)


def blackbox_exporter() -> Server:
    port = free_port()
    argv = [
        str(binary("TODO_BLACKBOX_EXPORTER", "prometheus-blackbox-exporter")),
        f"--config.file={DEPLOY / 'prometheus' / 'blackbox.yaml'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return Server(argv, port, "/-/healthy")


def prometheus(directory: Path, config: dict[str, Any], rules: dict[str, Any]) -> Server:
    """Prometheus with `config` and one rule file `rules`, its data in `directory`."""
    (directory / "rules.yaml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    config = {**config, "rule_files": ["rules.yaml"]}
    (directory / "prometheus.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    argv = [
        str(binary("TODO_PROMETHEUS", "prometheus")),
        f"--config.file={directory / 'prometheus.yaml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return Server(argv, port, "/-/ready")


def alertmanager(directory: Path) -> Server:
    port = free_port()
    argv = [
        str(binary("TODO_ALERTMANAGER", "prometheus-alertmanager")),
        f"--config.file={DEPLOY / 'alertmanager' / 'alertmanager.yaml'}",
        f"--storage.path={directory}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: one instance, loopback only
    ]
    return Server(argv, port, "/-/ready")


def query(server: Server, expr: str) -> list[dict[str, Any]]:
    answer = get_json(f"{server.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def alert_state(server: Server, name: str) -> str:
    """ "firing", "pending" or "inactive" (absent from /api/v1/alerts)."""
    for alert in get_json(f"{server.url}/api/v1/alerts")["data"]["alerts"]:
        if alert["labels"]["alertname"] == name:
            return str(alert["state"])
    return "inactive"


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return loaded


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rules()["groups"] for rule in group["rules"] if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for group in rules()["groups"] for rule in group["rules"] if "record" in rule}


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def series_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels and durations left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if match[0] in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(match[0])
    return names
