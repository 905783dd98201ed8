"""change notifications

On PostgreSQL, each transaction that grows the log (its head row) or writes
the token table notifies ``registry.runtime.verify_cache.CHANNEL`` when it commits, so that
every worker's verification cache (registry/hot.py) retires what it keeps.
Triggers, not calls in the code: a token revoked by hand in SQL, or a writer
of another version, is seen too. SQLite has no notifications; nothing there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept here rather than imported, so that this revision stays as it ran.
_CHANNEL = 'aeo_registry_changes'


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    # One notification per table and transaction: PostgreSQL folds identical
    # ones, and the listener rereads the log's size whatever the payload.
    op.execute(f"""
        CREATE FUNCTION registry_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{_CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END $$""")
    op.execute('CREATE TRIGGER log_head_changed AFTER UPDATE ON log_head '
               'FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_change()')
    op.execute('CREATE TRIGGER api_token_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_token '
               'FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_change()')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP TRIGGER api_token_changed ON api_token')
    op.execute('DROP TRIGGER log_head_changed ON log_head')
    op.execute('DROP FUNCTION registry_notify_change()')
