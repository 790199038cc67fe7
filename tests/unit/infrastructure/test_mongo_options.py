"""The MongoDB client's durability and consistency settings are chosen, not inherited from the URI."""

from __future__ import annotations

from typing import Any

import pytest

from service.infrastructure.config import Driver, MongoSettings
from service.infrastructure.persistence.mongo.store import _client

# A URI that asks for weaker settings: the service's choices win.
URI = "mongodb://127.0.0.1:1/?w=1&readConcernLevel=local&retryWrites=false&retryReads=false"


@pytest.mark.parametrize("driver", ["motor", "pymongo"])
async def test_majority_writes_and_reads_and_retries(driver: Driver) -> None:
    client: Any = _client(MongoSettings(uri=URI, driver=driver))
    try:
        assert client.write_concern.document == {"w": "majority"}
        assert client.read_concern.level == "majority"
        options = client.options if driver == "pymongo" else client.delegate.options
        assert (options.retry_writes, options.retry_reads) == (True, True)
    finally:
        closed = client.close()
        if closed is not None:
            await closed
