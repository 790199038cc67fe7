"""Helpers shared by the test suites: test modules import from here, never from each other.

- `fakes`: a clock and an id generator the test controls; repositories whose reads wait on a gate or fail.
- `logs`, `metrics`: captured log lines and their JSON; a Prometheus scrape.
- `process`: the service and the pinned tools as processes (stderr waited on by pattern), free ports.
- `stores`, `mongo_server`: every store kind for a test; the MongoDB-wire server.
- `toxiproxy`, `faults`, `monitoring`: the fault proxy between the service and the database, the fault
  scenarios' service and figures, and real Prometheus, Alertmanager and blackbox exporter processes (tests/faults).
- `servers`: in-process servers for the client tests (faults injected, gated reads).
- `rich_status`: google.rpc.Status details decoded and checked against values written out here.
- `certificates`: throwaway certificate authorities.
- `dockerfile`, `manifests`, `server_contract`, `image`: the deployment files and the built image.
- `docs`: the README and docs/ pages: their code blocks, tables and links.
- `example_caller`, `slow_service`: programs run by tests (`python -m tests.support.<name>`).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
