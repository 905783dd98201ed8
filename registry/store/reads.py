"""The one fast way to read: compiled statements run on a driver connection outside any transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable


class Prepared:
    """A Core statement compiled once per dialect and run on the driver directly.

    The SQL still comes from the models; what is skipped is SQLAlchemy's work
    per execution, several times what the driver itself takes and once most
    of the cost of a verification. Result values come back as the driver
    gives them.
    """

    def __init__(self, statement: Executable):
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def sql(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        """The SQL, the parameter names in order (positional drivers), and the values the statement fixes."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            form = self.statement.compile(dialect=dialect)
            names = tuple(form.positiontup) if form.positional else None
            fixed = {name: value for name, value in form.params.items() if value is not None}
            compiled = self._compiled[dialect.name] = (form.string, names, fixed)
        return compiled


class Reader:
    """Read-only queries on one driver connection, outside any transaction.

    Each statement sees what is committed when it runs; the hot paths stay
    consistent by bounding what they read with the log size they read first.
    """

    def __init__(self, connection: Any, dialect: Dialect, engine: Engine | None = None):
        self.connection = connection
        self.dialect = dialect
        self.engine = engine  # where to get a fresh connection if this one died

    def _bound(self, query: Prepared, params: dict[str, Any]) -> tuple[str, Any]:
        """The SQL for this dialect and the arguments in the form its driver takes."""
        sql, names, fixed = query.sql(self.dialect)
        params = {**fixed, **params}
        return sql, tuple(params[n] for n in names) if names is not None else params

    def all(self, query: Prepared, **params: Any) -> list[Sequence[Any]]:
        sql, arguments = self._bound(query, params)
        try:
            return self._run(sql, arguments)
        except self.dialect.loaded_dbapi.Error as exc:
            # Without a ping per checkout, a connection the database dropped
            # (a restart, a failover) shows up here: replace it, try once more.
            if self.engine is None or not self.dialect.is_disconnect(exc, self.connection, None):
                raise
            self.connection.invalidate()
            self.connection = self.engine.raw_connection()
            return self._run(sql, arguments)

    def _run(self, sql: str, arguments: Any) -> list[Sequence[Any]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, arguments)
            return cursor.fetchall()
        finally:
            cursor.close()

    def each(self, query: Prepared, runs: Sequence[dict[str, Any]]) -> Iterator[list[Sequence[Any]]]:
        """The rows of ``query`` run with each of ``runs``, one list per run, in order.

        On PostgreSQL the runs go to the server together (psycopg's pipeline
        mode): it works through the later ones while the caller is still busy
        with the first; elsewhere they run one after the other.
        """
        if self.dialect.name != "postgresql" or len(runs) < 2:
            for params in runs:
                yield self.all(query, **params)
            return
        connection = self.connection.dbapi_connection
        with connection.pipeline():
            cursors = []
            for params in runs:
                cursor = connection.cursor()
                cursor.execute(*self._bound(query, params))
                cursors.append(cursor)
            for cursor in cursors:
                yield cursor.fetchall()
                cursor.close()

    def one(self, query: Prepared, **params: Any) -> Sequence[Any] | None:
        rows = self.all(query, **params)
        return rows[0] if rows else None

    @classmethod
    def of(cls, session: Session) -> Reader:
        """A reader on a session's connection, inside its transaction (services, tests, the CLI)."""
        connection = session.connection()
        return cls(connection.connection.dbapi_connection, connection.dialect)


