"""licence consent for partners

The change feed and snapshots show another party's licence statements only
with the operator's current consent; keeping it beside the current version
lets them filter in SQL. Existing rows are filled from their statements.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import base64
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _consent(statement: str) -> bool:
    part = statement.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return bool((payload.get("consent") or {}).get("partners"))


def upgrade() -> None:
    with op.batch_alter_table('licence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_partners', sa.Boolean(), server_default='0', nullable=False))
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT licence.certificate, log_entry.statement FROM licence "
        "JOIN log_entry ON log_entry.idx = licence.log_index")).all()
    consenting = [{"certificate": certificate} for certificate, statement in rows if _consent(statement)]
    if consenting:
        connection.execute(sa.text("UPDATE licence SET consent_partners = :yes WHERE certificate = :certificate")
                           .bindparams(yes=True), consenting)


def downgrade() -> None:
    with op.batch_alter_table('licence', schema=None) as batch_op:
        batch_op.drop_column('consent_partners')
