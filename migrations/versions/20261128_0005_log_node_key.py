"""log node key

A proof reads one stored hash per level. Ordered by (level, idx), those lay
one per level far apart, and on SQLite behind a separate index too: at a
million leaves a proof read some twenty pages, most of them not cached.
Nodes are now keyed by ``registry.crypto.merkle.node_key`` (band of six
levels, first leaf covered, level), which puts the hashes one proof needs
in a few neighbouring pages: on SQLite in the table itself (WITHOUT ROWID),
on PostgreSQL in the primary key's index, which carries the hash (INCLUDE)
so that a proof can be read from the index alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# registry.crypto.merkle.node_key in SQL, for the rows already stored.
_KEY = ("((CAST(level AS BIGINT) / 6) << 50) | ((idx << CAST(level AS INTEGER)) << 6) "
        "| CAST(level AS BIGINT)")


def _set_aside() -> None:
    op.rename_table('log_node', 'log_node_old')
    if op.get_bind().dialect.name == 'postgresql':
        # PostgreSQL names the key's index after the constraint, in the schema's one namespace.
        op.execute('ALTER INDEX pk_log_node RENAME TO pk_log_node_old')


def upgrade() -> None:
    _set_aside()
    op.create_table(
        'log_node',
        sa.Column('node_key', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('level', sa.SmallInteger(), nullable=False),
        sa.Column('idx', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('node_key', name=op.f('pk_log_node'), postgresql_include=['hash']),
        sqlite_with_rowid=False,
    )
    op.execute(f"INSERT INTO log_node (node_key, level, idx, hash) SELECT {_KEY}, level, idx, hash FROM log_node_old")
    op.drop_table('log_node_old')


def downgrade() -> None:
    _set_aside()
    op.create_table(
        'log_node',
        sa.Column('level', sa.SmallInteger(), nullable=False),
        sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_log_node')),
    )
    op.execute("INSERT INTO log_node (level, idx, hash) SELECT level, idx, hash FROM log_node_old")
    op.drop_table('log_node_old')
