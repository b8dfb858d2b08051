"""The fast tier: a service's subscribers driven through FastStream's in-memory test broker, against the real
PostgreSQL (never a broker process: the bootstrap address below refuses every connection, so a handler that
reached for the network would fail here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.isolation import Isolation

NO_BROKER = "127.0.0.1:9"
"""The discard port: nothing listens there."""


@pytest.fixture
def isolation(database_url: str) -> Iterator[Isolation]:
    isolated = Isolation(database_url=database_url, kafka_bootstrap=NO_BROKER)
    yield isolated
    isolated.drop_schemas()
