"""`python -m service`: read the environment, set up logging, then serve here or fork workers.

The environment is read here, once, and nowhere else (`Settings.from_env`,
which also reads the files it names: secrets, TLS files, the tokens file).
A single process serves through the lifecycle (service/lifecycle.py); with
TODO_WORKERS > 1 the supervisor (service/supervisor.py) forks the workers,
each of which runs the same lifecycle.

Exit status: 0 after a clean stop, 1 when the service cannot start (an
address in use), 2 on a configuration error (one line on stderr).
"""

from __future__ import annotations

import logging
import os
import sys

from service.infrastructure.config import ConfigError, Settings
from service.infrastructure.observability.logs import configure_logging
from service.lifecycle import MakeApp, run

_log = logging.getLogger("service")


def main(make_app: MakeApp | None = None) -> int:
    """Entry point of `python -m service`; returns the exit status.

    `make_app` builds the App from the settings (default: `bootstrap`); test and
    benchmark servers pass `functools.partial(bootstrap, repository=...)`.
    """
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as error:
        print(f"todo-service: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level_number, settings.log_format)
    for warning in settings.warnings:
        _log.warning("%s", warning)
    if settings.workers > 1:
        from service.supervisor import supervise  # noqa: PLC0415 (only for workers)

        return supervise(settings, make_app)
    return run(settings, make_app)
