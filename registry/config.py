"""Typed settings, read from ``REGISTRY_*`` environment variables.

Every setting is listed in the README. The defaults make a newcomer's first
run work on SQLite; ``REGISTRY_ENV=production`` turns on the checks a real
deployment needs and refuses to start when one fails.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "production", "testing")


class ConfigError(RuntimeError):
    """Settings the service must not start with."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"must be positive: {value!r}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(f"must be a positive number of seconds: {value!r}")
    return number


def _rate(value: str) -> tuple[int, int]:
    """``N/SECONDS``: at most N events per window of SECONDS."""
    count, _, window = value.partition("/")
    return _positive_int(count), _positive_int(window or "60")


def _path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def database_url(value: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix):]
    return value


@dataclass(frozen=True)
class Settings:
    env: str = field(default="development", metadata={"env": "REGISTRY_ENV"})
    database_url: str = field(
        default=f"sqlite:///{PROJECT_ROOT / 'instance' / 'registry.sqlite3'}",
        metadata={"env": "REGISTRY_DATABASE_URL", "parse": database_url},
    )
    keys_dir: Path = field(default=PROJECT_ROOT / "keys", metadata={"env": "REGISTRY_KEYS_DIR", "parse": _path})
    log_origin: str = field(default="aeo-registry.example/log", metadata={"env": "REGISTRY_LOG_ORIGIN"})
    debug: bool = field(default=False, metadata={"env": "REGISTRY_DEBUG", "parse": _bool})
    max_body_bytes: int = field(
        default=16 * 1024 * 1024, metadata={"env": "REGISTRY_MAX_BODY_BYTES", "parse": _positive_int}
    )
    evidence_max_bytes: int = field(
        default=64 * 1024 * 1024, metadata={"env": "REGISTRY_EVIDENCE_MAX_BYTES", "parse": _positive_int}
    )
    answer_ttl_seconds: int = field(
        default=300, metadata={"env": "REGISTRY_ANSWER_TTL_SECONDS", "parse": _positive_int}
    )
    publish_batch_max: int = field(
        default=10_000, metadata={"env": "REGISTRY_PUBLISH_BATCH_MAX", "parse": _positive_int}
    )
    verify_batch_max: int = field(
        default=5_000, metadata={"env": "REGISTRY_VERIFY_BATCH_MAX", "parse": _positive_int}
    )
    batch_helper: bool = field(default=True, metadata={"env": "REGISTRY_BATCH_HELPER", "parse": _bool})
    batch_split_min: int = field(
        default=1_000, metadata={"env": "REGISTRY_BATCH_SPLIT_MIN", "parse": _positive_int}
    )
    verify_cache: bool = field(default=True, metadata={"env": "REGISTRY_VERIFY_CACHE", "parse": _bool})
    public_check_rate: tuple[int, int] = field(
        default=(30, 60), metadata={"env": "REGISTRY_PUBLIC_CHECK_RATE", "parse": _rate}
    )
    auth_failure_rate: tuple[int, int] = field(
        default=(20, 60), metadata={"env": "REGISTRY_AUTH_FAILURE_RATE", "parse": _rate}
    )
    proxy_hops: int = field(default=0, metadata={"env": "REGISTRY_PROXY_HOPS", "parse": int})
    cors_origin: str = field(default="*", metadata={"env": "REGISTRY_CORS_ORIGIN"})
    log_level: str = field(default="INFO", metadata={"env": "REGISTRY_LOG_LEVEL"})
    # Witnesses (services/witnesses.py): each server process submits in a
    # thread of its own, coordinated with the others through the database.
    # None: on, except with REGISTRY_ENV=testing, whose many short-lived apps would each leave a thread.
    witness_submit: bool | None = field(default=None, metadata={"env": "REGISTRY_WITNESS_SUBMIT", "parse": _bool})
    witness_interval_seconds: float = field(
        default=10.0, metadata={"env": "REGISTRY_WITNESS_INTERVAL_SECONDS", "parse": _positive_float}
    )
    witness_timeout_seconds: float = field(
        default=5.0, metadata={"env": "REGISTRY_WITNESS_TIMEOUT_SECONDS", "parse": _positive_float}
    )
    witness_backoff_max_seconds: float = field(
        default=600.0, metadata={"env": "REGISTRY_WITNESS_BACKOFF_MAX_SECONDS", "parse": _positive_float}
    )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
        """Defaults, then the environment, then explicit overrides (tests)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.metadata["env"]
            if name in environ:
                parse = spec.metadata.get("parse", str)
                try:
                    values[spec.name] = parse(environ[name])
                except ValueError as exc:
                    raise ConfigError(f"{name}: {exc}") from exc
        settings = replace(cls(), **values, **dict(overrides or {}))
        settings.check()
        return settings

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def testing(self) -> bool:
        return self.env == "testing"

    @property
    def submits_to_witnesses(self) -> bool:
        return self.witness_submit if self.witness_submit is not None else not self.testing

    def check(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"REGISTRY_ENV must be one of {', '.join(ENVIRONMENTS)}")
        if not self.production:
            return
        # No secret key is required: nothing is signed with one (no sessions,
        # app.NoSessions; the language cookie is a plain choice, unsigned).
        if self.debug:
            raise ConfigError("REGISTRY_DEBUG must be off in production")
