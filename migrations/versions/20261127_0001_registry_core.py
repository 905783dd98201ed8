"""registry core

Revision ID: 0001
Revises: 
Create Date: 2026-11-27

The first schema: parties and keys, tokens, the transparency log, licences
and agreements.
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import registry.store.models

revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('checkpoint',
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('signed_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_checkpoint'))
    )
    op.create_table('log_entry',
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('party_code', sa.String(length=2), nullable=True),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kid', sa.String(length=43), nullable=False),
    sa.Column('statement', sa.Text(), nullable=False),
    sa.Column('leaf', sa.Text(), nullable=False),
    sa.Column('logged_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('licence', 'party_key', 'agreement')", name=op.f('ck_log_entry_kind')),
    sa.PrimaryKeyConstraint('idx', name=op.f('pk_log_entry'))
    )
    with op.batch_alter_table('log_entry', schema=None) as batch_op:
        batch_op.create_index('ix_log_entry_kind_subject', ['kind', 'subject'], unique=False)

    op.create_table('log_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tree_size', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_log_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_log_head'))
    )
    op.create_table('log_node',
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_log_node'))
    )
    op.create_table('party',
    sa.Column('code', sa.String(length=2), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('authority', sa.String(length=200), nullable=False),
    sa.Column('created_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_party'))
    )
    op.create_table('agreement',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['log_index'], ['log_entry.idx'], name=op.f('fk_agreement_log_index_log_entry')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreement'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('party_code', sa.String(length=2), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', registry.store.models.UTCDateTime(), nullable=True),
    sa.CheckConstraint("role IN ('authority', 'customs')", name=op.f('ck_api_token_role')),
    sa.ForeignKeyConstraint(['party_code'], ['party.code'], name=op.f('fk_api_token_party_code_party')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_party_code'), ['party_code'], unique=False)

    op.create_table('licence',
    sa.Column('certificate', sa.String(length=35), nullable=False),
    sa.Column('party_code', sa.String(length=2), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('type', sa.String(length=4), nullable=False),
    sa.Column('operator_id', sa.String(length=17), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('effective_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', registry.store.models.UTCDateTime(), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['log_index'], ['log_entry.idx'], name=op.f('fk_licence_log_index_log_entry')),
    sa.ForeignKeyConstraint(['party_code'], ['party.code'], name=op.f('fk_licence_party_code_party')),
    sa.PrimaryKeyConstraint('certificate', name=op.f('pk_licence'))
    )
    with op.batch_alter_table('licence', schema=None) as batch_op:
        batch_op.create_index('ix_licence_party_log_index', ['party_code', 'log_index'], unique=False)

    op.create_table('party_key',
    sa.Column('kid', sa.String(length=43), nullable=False),
    sa.Column('party_code', sa.String(length=2), nullable=False),
    sa.Column('jwk', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('hosted', sa.Boolean(), nullable=False),
    sa.Column('valid_from', registry.store.models.UTCDateTime(), nullable=False),
    sa.Column('added_log_index', sa.BigInteger(), nullable=False),
    sa.Column('retired_at', registry.store.models.UTCDateTime(), nullable=True),
    sa.Column('retired_log_index', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', registry.store.models.UTCDateTime(), nullable=True),
    sa.Column('revoked_log_index', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("status IN ('active', 'retired', 'revoked')", name=op.f('ck_party_key_status')),
    sa.ForeignKeyConstraint(['party_code'], ['party.code'], name=op.f('fk_party_key_party_code_party')),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_party_key'))
    )
    with op.batch_alter_table('party_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_key_party_code'), ['party_code'], unique=False)

    op.create_table('agreement_version',
    sa.Column('agreement_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreement.id'], name=op.f('fk_agreement_version_agreement_id_agreement')),
    sa.ForeignKeyConstraint(['log_index'], ['log_entry.idx'], name=op.f('fk_agreement_version_log_index_log_entry')),
    sa.PrimaryKeyConstraint('agreement_id', 'version', name=op.f('pk_agreement_version')),
    sa.UniqueConstraint('log_index', name=op.f('uq_agreement_version_log_index'))
    )
    op.create_table('licence_identifier',
    sa.Column('identifier', sa.String(length=17), nullable=False),
    sa.Column('certificate', sa.String(length=35), nullable=False),
    sa.ForeignKeyConstraint(['certificate'], ['licence.certificate'], name=op.f('fk_licence_identifier_certificate_licence')),
    sa.PrimaryKeyConstraint('identifier', 'certificate', name=op.f('pk_licence_identifier'))
    )
    op.create_table('licence_version',
    sa.Column('certificate', sa.String(length=35), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['certificate'], ['licence.certificate'], name=op.f('fk_licence_version_certificate_licence')),
    sa.ForeignKeyConstraint(['log_index'], ['log_entry.idx'], name=op.f('fk_licence_version_log_index_log_entry')),
    sa.PrimaryKeyConstraint('certificate', 'version', name=op.f('pk_licence_version')),
    sa.UniqueConstraint('log_index', name=op.f('uq_licence_version_log_index'))
    )
    # The single head row that every writer locks before appending.
    log_head = sa.table("log_head", sa.column("id", sa.Integer), sa.column("tree_size", sa.BigInteger),
                        sa.column("updated_at", sa.DateTime))
    op.bulk_insert(log_head, [{"id": 1, "tree_size": 0, "updated_at": datetime.now(UTC).replace(tzinfo=None)}])


def downgrade() -> None:
    op.drop_table('licence_version')
    op.drop_table('licence_identifier')
    op.drop_table('agreement_version')
    with op.batch_alter_table('party_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_key_party_code'))

    op.drop_table('party_key')
    with op.batch_alter_table('licence', schema=None) as batch_op:
        batch_op.drop_index('ix_licence_party_log_index')

    op.drop_table('licence')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_party_code'))

    op.drop_table('api_token')
    op.drop_table('agreement')
    op.drop_table('party')
    op.drop_table('log_node')
    op.drop_table('log_head')
    with op.batch_alter_table('log_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_log_entry_kind_subject')

    op.drop_table('log_entry')
    op.drop_table('checkpoint')
