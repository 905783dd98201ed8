"""A thread in each server process that feeds new checkpoints to the witnesses.

The work itself is a use case (``services.witnesses.submit_due``): find the
witnesses behind the newest checkpoint, take each one's lease in the
database, submit, keep the cosignature. This thread only decides when: as
soon as its own process has committed (``wake``, from the session factory's
commit hook, so that a new checkpoint reaches the witnesses at once without
the publishing request doing anything), and every ``timing.interval``
seconds for checkpoints other processes signed. Started on the first request
a process serves, so after gunicorn forks its workers, never in the master
or the CLI.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from ..services.witnesses import Post, Timing, http_post, process_id, submit_due

logger = logging.getLogger(__name__)


class Submitter:
    """``passes`` counts finished passes and ``passed`` is notified after each, for whoever waits on them."""

    def __init__(self, sessions: Callable[[], Session], timing: Timing, now: Callable[[], datetime],
                 post: Post = http_post):
        self.sessions = sessions
        self.timing = timing
        self.now = now
        self.post = post
        self.owner = process_id()
        self.passes = 0
        self.passed = threading.Condition()
        self._due = threading.Event()  # something was committed here since the last pass began
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def start(self) -> None:
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="witness-submitter", daemon=True)
                self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Look again now (this process committed; perhaps a checkpoint)."""
        self._due.set()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._due.clear()
            try:
                submit_due(self.sessions, self.timing, self.now, self.post, self.owner)
            except Exception:  # the database away, say: the next pass tries again
                logger.exception("witness submission pass failed")
            with self.passed:
                self.passes += 1
                self.passed.notify_all()
            self._due.wait(self.timing.interval)
