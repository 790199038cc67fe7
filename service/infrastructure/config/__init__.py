"""Configuration: the table of settings, its reader, and the secrets and key files it checks.

- `settings`: the settings dataclasses, whose fields are the table's rows, and `Settings.from_env`;
- `table`: what a row is, and what is derived from the rows (reading them, the reference, the variable names);
- `reader`: the reader that collects every problem, and the kinds of values (parsers with their bounds);
- `credentials`: secrets or their files, the TLS files, the tokens file;
- `pem`: the PEM checks of the TLS files.
"""

from __future__ import annotations

from service.infrastructure.config.credentials import (
    BUILT_IN_PAGE_TOKEN_SECRET,
    TlsSettings,
    TokensFile,
    file_signature,
    read_tokens,
)
from service.infrastructure.config.reader import ConfigError
from service.infrastructure.config.settings import (
    DEFAULT_DATABASE,
    Driver,
    MongoSettings,
    ServerSettings,
    Settings,
    TracingSettings,
    local_health_address,
)
from service.infrastructure.config.table import Row, rows, variables

__all__ = [
    "BUILT_IN_PAGE_TOKEN_SECRET",
    "DEFAULT_DATABASE",
    "ConfigError",
    "Driver",
    "MongoSettings",
    "Row",
    "ServerSettings",
    "Settings",
    "TlsSettings",
    "TokensFile",
    "TracingSettings",
    "file_signature",
    "local_health_address",
    "read_tokens",
    "rows",
    "variables",
]
