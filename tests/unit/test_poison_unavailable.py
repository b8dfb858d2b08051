"""Which failures mean "the database or the broker is away, wait and redeliver" (never a dead letter) and which
are the batch's own: psycopg's errors count the same whether SQLAlchemy wrapped them or COPY and the tuple queries
raised them straight from the driver."""

from __future__ import annotations

import pytest
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.poison import unavailable


def wrapped(cause: Exception) -> DBAPIError:
    return DBAPIError("statement", {}, cause)


@pytest.mark.parametrize("cause", [pg_errors.OperationalError("connection lost"), pg_errors.AdminShutdown(),
                                   pg_errors.CannotConnectNow(), pg_errors.InterfaceError("connection closed")])
def test_a_lost_or_refused_connection_is_unavailability_wrapped_or_raw(cause: Exception) -> None:
    assert unavailable(cause)
    assert unavailable(wrapped(cause))


@pytest.mark.parametrize("error", [OSError("reset"), TimeoutError()])
def test_network_failures_are_unavailability(error: Exception) -> None:
    assert unavailable(error)


@pytest.mark.parametrize("cause", [pg_errors.UniqueViolation(), pg_errors.InvalidTextRepresentation(),
                                   pg_errors.NumericValueOutOfRange()])
def test_what_the_batch_itself_caused_is_not(cause: Exception) -> None:
    assert not unavailable(cause)
    assert not unavailable(wrapped(cause))
    assert not unavailable(IntegrityError("statement", {}, cause))
    assert not unavailable(ValueError("bad row"))
