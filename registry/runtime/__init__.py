"""The machinery of a running registry: what each process keeps between requests.

The use cases (``registry.services``) never import this package; they take
what they need as arguments. ``Runtime`` is the one object that holds, per
application, the settings, the keys, the database, the caches that speed up
verification and proofs, the rate limiters and the process that answers half
of a large batch; ``registry.app.create_app`` builds it, the HTTP layer and
the CLI reach it through ``Runtime.of(app)``.

- ``verify_cache``: single verifications answered from memory, kept fresh by
  the database's notifications (PostgreSQL) or its data version (SQLite).
- ``batches``: a process beside each server worker for half of a large
  verify batch, and the garbage collector's settings for batches.
- ``limits``: rate limits (failed authentication, the public self-check).
- ``witnessing``: the thread that feeds new checkpoints to the witnesses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from .. import clock
from ..config import Settings
from ..keyring import Keyring
from ..services import witnesses
from ..services.verification import Lookups, Snapshot, load_snapshot
from ..store.database import Database
from ..store.reads import Reader
from .batches import BatchHelper, tune_gc
from .limits import RateLimiter
from .proof_nodes import UpperNodes
from .snapshots import SnapshotCache
from .verify_cache import CachedLookups, HotCache, make_cache
from .witnessing import Submitter

_EXTENSION = "registry"


@dataclass
class Runtime:
    settings: Settings
    keyring: Keyring
    database: Database
    snapshots: SnapshotCache  # what answers at one log size share (agreements, void statements, parties)
    proof_nodes: UpperNodes  # the log's upper nodes, which every proof shares
    verify_cache: HotCache | None
    batches: BatchHelper | None  # started by the server's worker hook, not here: tests and the CLI answer alone
    auth_failures: RateLimiter
    public_checks: RateLimiter
    witness_submitter: Submitter | None  # started on the first request a server process serves

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        database = Database(settings.database_url)
        verify_cache = make_cache(database) if settings.verify_cache else None
        if verify_cache is not None:
            # A write made here shows in this process's next answer, without
            # waiting for its notification to come back.
            event.listen(database.sessionmaker, "after_commit", lambda _session: verify_cache.retire())
        submitter = None
        if settings.submits_to_witnesses:
            # clock.now looked up at each call: tests freeze time by replacing it.
            submitter = Submitter(database.session, witnesses.Timing.of(settings), lambda: clock.now())
            # A checkpoint this process signed reaches the witnesses at once, not at the next interval.
            event.listen(database.sessionmaker, "after_commit", lambda _session: submitter.wake())
        return cls(
            settings=settings,
            keyring=Keyring(settings.keys_dir, settings.log_origin),
            database=database,
            snapshots=SnapshotCache(),
            proof_nodes=UpperNodes(),
            verify_cache=verify_cache,
            batches=(BatchHelper(settings.database_url, settings.batch_split_min)
                     if settings.batch_helper else None),
            auth_failures=RateLimiter(*settings.auth_failure_rate),
            public_checks=RateLimiter(*settings.public_check_rate),
            witness_submitter=submitter,
        )

    def install(self, app: Flask) -> None:
        app.extensions[_EXTENSION] = self

    @staticmethod
    def of(app: Flask) -> Runtime:
        return app.extensions[_EXTENSION]

    def lookups(self, reader: Reader) -> Lookups:
        """What a request reads to authenticate and verify: from memory where the cache can, else the database."""
        return CachedLookups(self.verify_cache, reader) if self.verify_cache is not None else Lookups(reader)

    def snapshot_at(self, size: int, session: Callable[[], Session]) -> Snapshot:
        """The snapshot at ``size``, kept for the next requests; ``session`` is opened only to load one."""
        return self.snapshots.at(size, lambda: load_snapshot(session(), size))

    def start_worker(self) -> None:
        """In a server worker, once it has loaded the app (gunicorn's ``post_worker_init``): freeze what was
        loaded for the garbage collector, and start the batch helper if the settings ask for one."""
        tune_gc()
        if self.batches is not None:
            self.batches.start()

    def close(self) -> None:
        if self.witness_submitter is not None:
            self.witness_submitter.stop()
        if self.batches is not None:
            self.batches.stop()
        if self.verify_cache is not None:
            self.verify_cache.close()
        self.database.dispose()
