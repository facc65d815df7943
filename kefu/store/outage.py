"""Which exceptions from the stores mean "the database or Redis cannot be reached right now" (try again later), as
opposed to a bug or a bad request. The HTTP layer answers those with 503, the engine with a retryable ``error``."""

from __future__ import annotations

import errno
import socket

import sqlalchemy.exc as sql_errors
from redis import exceptions as redis_errors

# What the drivers raise when the server is down, restarting or unreachable. asyncpg's connect errors reach us raw
# (ConnectionRefusedError, socket.gaierror): SQLAlchemy only wraps the driver's own exception classes.
OUTAGE_TYPES: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    sql_errors.DBAPIError,  # narrowed by is_outage: an IntegrityError is a bug, not an outage
    sql_errors.TimeoutError,  # no pooled connection came free in time
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    OSError,  # narrowed by is_outage to an unreachable network or host
)

# What a connect fails with when no route leads to the server (plain OSErrors, not ConnectionError).
_UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN)

# SQLSTATEs of a PostgreSQL that is unreachable or not serving: connection exceptions (class 08), shutting down or
# starting up (57P01-57P03, e.g. "the database system is starting up"), too many connections.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a backing store is unavailable (retrying later may work)."""
    if isinstance(exc, sql_errors.DBAPIError):
        if isinstance(exc, sql_errors.OperationalError | sql_errors.InterfaceError) or exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        return isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES)
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return exc.errno in _UNREACHABLE  # not a missing file, a full disk, …
    return isinstance(exc, OUTAGE_TYPES)
