"""witnesses and cosignatures

The witnesses the administrator configures (``registry witness add``), with
their submission state: which process holds the lease to submit to each, the
size each witness says it holds, the backoff after failures and the counts
that /readyz shows. And the cosignature lines they returned, kept per
checkpoint and served as further signature lines of its note. Both tables
start empty; no existing row changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.store.models

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('witness',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('vkey', sa.Text(), nullable=False),
    sa.Column('added_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.Column('witness_size', sa.BigInteger(), nullable=True),
    sa.Column('cosigned_size', sa.BigInteger(), nullable=True),
    sa.Column('last_cosigned_at', registry.store.models.UTCDateTime(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', registry.store.models.UTCDateTime(), nullable=True),
    sa.Column('next_attempt_at', registry.store.models.UTCDateTime(), nullable=True),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('submissions', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failed_submissions', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_attempt_at', registry.store.models.UTCDateTime(), nullable=True),
    sa.Column('last_problem', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_witness')),
    sa.UniqueConstraint('vkey', name=op.f('uq_witness_vkey'))
    )
    op.create_table('cosignature',
    sa.Column('tree_size', sa.BigInteger(), nullable=False),
    sa.Column('vkey', sa.Text(), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.Column('cosigned_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tree_size'], ['checkpoint.tree_size'], name=op.f('fk_cosignature_tree_size_checkpoint')),
    sa.PrimaryKeyConstraint('tree_size', 'vkey', name=op.f('pk_cosignature'))
    )


def downgrade() -> None:
    op.drop_table('cosignature')
    op.drop_table('witness')
