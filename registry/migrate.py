"""Schema changes through Alembic only, for the CLI and the tests.

Alembic is imported when a command needs it, not with the app: every CLI
call and every gunicorn worker imports this module, and Alembic was about a
fifth of their start-up time (a bulk import runs the CLI once per party).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from .config import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def check(engine: Engine) -> None:
    """Raise if the models and the newest migration differ."""
    from alembic import command

    with engine.connect() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.check(config)
