"""trust rules: void keys, identifier ownership

A key revocation may now void statements logged after a back-dated
``revoked_at``, and with them the keys such statements enrolled: a key
enrolled by a void statement gets the new ``party_key`` status ``void``.

Identifier ownership (a licence's ``operator.id`` begins with its issuer's
code; an identifier beginning with another party's code is never claimable;
any other alias belongs to one party at a time) is enforced when a version
is published and applied when an identifier is looked up, both from the
statements themselves. Statements already logged that break it stay in the
log, which never forgets, and in ``licence_identifier``, which indexes every
identifier any version named: an alias beginning with another party's code
simply finds nothing from now on, and where two parties' versions list one
other alias at the same moment, the claim logged first counts. This revision
changes no row for it; ``registry audit`` reports no fault for such
statements, since they were valid when they were accepted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('party_key', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_party_key_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('active', 'retired', 'revoked', 'void')")


def downgrade() -> None:
    with op.batch_alter_table('party_key', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_party_key_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('active', 'retired', 'revoked')")
