"""Many rows at once, in the session's transaction: the write path of bulk publishing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import insert
from sqlalchemy.orm import Session

# From this many rows on, PostgreSQL gets COPY rather than INSERT.
COPY_FROM = 200


def insert_rows(session: Session, model, rows: Sequence[dict]) -> None:
    """Many rows at once, in the session's transaction; each row holds every column's value.

    The ORM's bulk INSERT path (``session.execute(insert(Model), rows)``)
    spent more time collecting its per-row state than the database spent
    writing, and Core's still a large part of a bulk publish building and
    processing parameters row by row. So the rows go to the driver as
    tuples, through the columns' own bind processing: on PostgreSQL by COPY,
    which psycopg feeds in C, elsewhere by the driver's ``executemany`` of
    the table's compiled INSERT. Publishing 10,000 licences writes some
    60,000 rows. Constraints hold for COPY exactly as for INSERT.
    """
    if not rows:
        return
    connection = session.connection()
    table, dialect = model.__table__, connection.dialect
    names = list(rows[0])
    driver = connection.connection.driver_connection
    if dialect.name == "postgresql" and len(rows) < COPY_FROM:
        connection.execute(insert(table), rows)
        return
    values = _driver_values(connection, table, names, rows)
    if dialect.name == "postgresql":
        columns = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
        with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        return
    compiled = insert(table).compile(dialect=dialect, column_keys=names)
    if compiled.positional:
        order = [names.index(name) for name in compiled.positiontup]
        arguments = ([row[i] for i in order] for row in values)
    else:
        arguments = (dict(zip(names, row, strict=True)) for row in values)
    cursor = driver.cursor()
    try:
        cursor.executemany(compiled.string, arguments)
    finally:
        cursor.close()


def _driver_values(connection, table, names: Sequence[str], rows: Sequence[dict]) -> Iterator[list]:
    """Each row's values in ``names`` order, as the driver takes them (UTCDateTime's conversion to naive UTC)."""
    processors = [table.c[name].type._cached_bind_processor(connection.dialect) for name in names]
    if not any(processors):
        return ([row[name] for name in names] for row in rows)
    return ([process(row[name]) if process else row[name] for name, process in zip(names, processors, strict=True)]
            for row in rows)


