"""Persistence: the tables, how to reach the database, and the few ways of writing and reading fast.

- ``models``: the tables (SQLAlchemy 2 declarative); Alembic (``migrate``,
  ``migrations/``) is the only way they are made outside tests.
- ``database``: engines, the session factory for transactions, and a kept
  read connection per server thread.
- ``reads``: compiled statements run on a driver connection, the one fast
  path for the hot reads of verification and proofs.
- ``bulk``: many rows at once (COPY on PostgreSQL), for bulk publishing.
- ``nodes``: where a Merkle subtree's hash sits in the ``log_node`` table.

Nothing here knows Flask or HTTP; the use cases in ``registry.services``
build on it.
"""
