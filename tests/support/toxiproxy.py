"""Shopify's Toxiproxy, started by the tests and driven through its HTTP API.

`make tools` builds the pinned server (TOXIPROXY_VERSION in the Makefile) into
.tools; TODO_TOXIPROXY points at it. One server per test module, its API and
every proxy on 127.0.0.1. A toxic acts on one direction of a connection:
`upstream` is what the service sends to the database, `downstream` what the
database answers, which is how a write that was applied loses its reply.
The server never reports anything anywhere (it has no telemetry).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.support import REPO
from tests.support.process import LoggedProcess, free_port, tool

Stream = Literal["upstream", "downstream"]
HOW = "run `make tools` (make check does) to build the pinned Toxiproxy into .tools"


def toxiproxy_binary() -> Path:
    default = next(iter(sorted((REPO / ".tools").glob("toxiproxy-*/toxiproxy-server"))), REPO / ".tools" / "toxiproxy")
    return tool("TODO_TOXIPROXY", default, HOW)


class ToxiproxyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Proxy:
    """One proxy: where the service connects (`listen`) and the API to break it."""

    api: Toxiproxy
    name: str
    port: int

    @property
    def uri(self) -> str:
        """A MongoDB URI through this proxy (direct connection: no replica-set discovery past the proxy)."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def add(
        self, toxic: str, kind: str, stream: Stream = "downstream", toxicity: float = 1.0, **attributes: int
    ) -> None:
        body = {"name": toxic, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        self.api.call("POST", f"/proxies/{self.name}/toxics", body)

    def remove(self, toxic: str) -> None:
        self.api.call("DELETE", f"/proxies/{self.name}/toxics/{toxic}")

    def clear(self) -> None:
        for toxic in self.api.call("GET", f"/proxies/{self.name}/toxics"):
            self.remove(toxic["name"])

    @contextmanager
    def toxic(self, kind: str, stream: Stream = "downstream", **attributes: int) -> Iterator[None]:
        """`kind` on `stream` inside the block, removed afterwards."""
        name = f"{kind}_{stream}"
        self.add(name, kind, stream, **attributes)
        try:
            yield
        finally:
            self.remove(name)

    def black_hole(self) -> None:
        """No byte passes in either direction and nothing is closed (a silent network, half-open connections)."""
        for stream in ("upstream", "downstream"):
            self.add(f"black_hole_{stream}", "timeout", stream, timeout=0)

    def enabled(self, on: bool) -> None:
        """Disabled: every connection closed, new ones refused (the database's port is gone)."""
        self.api.call("POST", f"/proxies/{self.name}", {"enabled": on})


class Toxiproxy:
    """A toxiproxy-server process on loopback and its API."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = LoggedProcess(
            [str(toxiproxy_binary()), "-host", "127.0.0.1", "-port", str(self.port)], {"PATH": "/usr/bin:/bin"}, REPO
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("GET", "/version")
                break
            except (OSError, ToxiproxyError) as error:
                if time.monotonic() > deadline or self.process.process.poll() is not None:
                    self.close()
                    raise AssertionError(f"toxiproxy did not start: {error}\n{self.process.output}\n{HOW}") from None
                time.sleep(0.05)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise ToxiproxyError(f"{method} {path}: {error.code} {error.read().decode()}") from None
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def proxy(self, name: str, upstream: str) -> Proxy:
        """A new proxy to `upstream` (host:port) on a free loopback port."""
        created = self.call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0", "upstream": upstream})
        return Proxy(self, name, int(created["listen"].rsplit(":", 1)[1]))

    def close(self) -> None:
        if self.process.process.poll() is None:
            self.process.terminate(10)
        else:
            self.process.wait(10)
