"""licence version facts

Answering a verification read each version's log entry, signed statement
and all (about 1.3 KB, 1.3 GB of a million-licence registry), to learn the
few fields recognition needs. Those fields now sit beside the version
(``licence_version.facts``, see ``registry.domain.licence.facts``): a lookup
reads a small row instead, and a batch's working set fits in memory.
Existing rows are filled from their statements, a page at a time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.store.models
from registry.crypto import jws
from registry.services.licences import facts_text

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 5_000


def upgrade() -> None:
    op.add_column('licence_version', sa.Column('facts', sa.Text(), nullable=True))
    connection = op.get_bind()
    page = sa.text(
        "SELECT licence_version.log_index, log_entry.statement, log_entry.logged_at, log_entry.kid "
        "FROM licence_version JOIN log_entry ON log_entry.idx = licence_version.log_index "
        "WHERE licence_version.log_index > :after ORDER BY licence_version.log_index LIMIT :limit"
    ).columns(sa.column('log_index', sa.BigInteger()), sa.column('statement', sa.Text()),
              sa.column('logged_at', registry.store.models.UTCDateTime()), sa.column('kid', sa.Text()))
    fill = sa.text("UPDATE licence_version SET facts = :facts WHERE log_index = :log_index")
    after = -1
    while rows := connection.execute(page, {"after": after, "limit": _PAGE}).all():
        connection.execute(fill, [
            {"log_index": index, "facts": facts_text(jws.logged_payload(statement), logged_at, kid)}
            for index, statement, logged_at, kid in rows
        ])
        after = rows[-1].log_index
    with op.batch_alter_table('licence_version', schema=None) as batch_op:
        batch_op.alter_column('facts', existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('licence_version', schema=None) as batch_op:
        batch_op.drop_column('facts')
