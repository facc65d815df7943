"""Which store exceptions count as "the database or Redis is unavailable" (a 503 / a retryable error event)."""

from __future__ import annotations

import errno
import socket

import pytest
import sqlalchemy.exc
from redis import exceptions as redis_errors

from kefu.store.outage import is_outage


class _DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter raises: the server's SQLSTATE on ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi(sqlstate: str, kind: type[sqlalchemy.exc.DBAPIError] = sqlalchemy.exc.DBAPIError) -> Exception:
    return kind("SELECT 1", {}, _DriverError(sqlstate))


@pytest.mark.parametrize(
    "exc",
    [
        redis_errors.ConnectionError("Connection refused"),
        redis_errors.TimeoutError("Timeout reading from socket"),
        redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
        ConnectionRefusedError(111, "Connect call failed"),  # asyncpg's connect, unwrapped
        socket.gaierror(-2, "Name or service not known"),  # the database's host name does not resolve (yet)
        OSError(errno.ENETUNREACH, "Network is unreachable"),  # asyncpg's connect, unwrapped
        OSError(errno.EHOSTUNREACH, "No route to host"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        _dbapi("57P03"),  # PostgreSQL restarting: "the database system is starting up" (a plain DBAPIError)
        _dbapi("57P01"),  # terminating connection due to administrator command
        _dbapi("08006"),  # connection failure
        _dbapi("53300"),  # too many connections
    ],
    ids=repr,
)
def test_unreachable_stores_are_outages(exc: Exception) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        _dbapi("23505", sqlalchemy.exc.IntegrityError),  # a duplicate key is a bug, not an outage
        _dbapi("42P01", sqlalchemy.exc.ProgrammingError),  # a missing table: not migrated
        redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ValueError("bad"),
        FileNotFoundError(2, "No such file"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=repr,
)
def test_bugs_and_bad_data_are_not_outages(exc: Exception) -> None:
    assert not is_outage(exc)
