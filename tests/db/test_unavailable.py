"""Which errors mean "the database is unreachable" (answered 503 + Retry-After)."""

from __future__ import annotations

import asyncpg
import pytest

from helpdesk.db.pool import database_unavailable


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise error from inner
    except BaseException as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.PostgresConnectionError("server closed the connection"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients already"),
        asyncpg.exceptions.IdleSessionTimeoutError("idle session timeout"),
        asyncpg.exceptions._base.InternalClientError("cannot switch to state 12"),
        ConnectionResetError(104, "Connection reset by peer"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
)
def test_connection_failures_are_unavailable(error: BaseException) -> None:
    assert database_unavailable(error)


def test_a_failure_wrapped_by_another_error_or_in_a_group_is_unavailable() -> None:
    lost = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    assert database_unavailable(_raised_from(RuntimeError("dependency cleanup"), lost))
    assert database_unavailable(BaseExceptionGroup("cleanup", [ValueError("x"), lost]))


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        KeyError("missing"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.DataError("invalid input"),
    ],
)
def test_bugs_and_data_errors_are_not(error: BaseException) -> None:
    assert not database_unavailable(error)
