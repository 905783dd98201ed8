"""Schema changes through Alembic only, for the CLI and the tests.

Alembic is imported when a command needs it, not with the app: every CLI
call and every gunicorn worker imports this module, and Alembic was about a
fifth of their start-up time (a bulk import runs the CLI once per party).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from ..config import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


@contextmanager
def _migrating(engine: Engine) -> Iterator[tuple[Config, Connection]]:
    """A transaction for Alembic. On SQLite, foreign keys are off meanwhile.

    SQLite alters a table by copying it and dropping the old one, which live
    foreign keys forbid; Alembic's batch mode expects them off. They are
    checked before commit and switched back on after.
    """
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # ends SQLAlchemy's autobegun transaction; the pragma needs none
        try:
            with connection.begin():
                config = alembic_config(engine)
                config.attributes["connection"] = connection
                yield config, connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with _migrating(engine) as (config, _):
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with _migrating(engine) as (config, _):
        command.downgrade(config, revision)


def check(engine: Engine) -> None:
    """Raise if the models and the newest migration differ."""
    from alembic import command

    with engine.connect() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.check(config)
