"""When a party's key may sign: the rules publish, audit and offline checks share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .timefmt import format_time

ACTIONS = ("add", "retire", "revoke")


@dataclass(frozen=True)
class KeyValidity:
    kid: str
    party: str
    valid_from: datetime
    added_index: int  # the log entry that enrolled the key
    retired_index: int | None = None  # the log entry that retired it
    revoked_at: datetime | None = None  # compromise time; may be before it was logged

    def refusal(self, log_index: int, logged_at: datetime) -> str | None:
        """Why a statement logged at (``log_index``, ``logged_at``) may not use this key, or None.

        Retirement counts from its place in the log, so a retired key keeps
        every statement logged before it; revocation counts from ``revoked_at``,
        so statements logged after a compromise fall even if the revocation
        was logged later.
        """
        if log_index <= self.added_index:
            return f"key {self.kid} was not yet enrolled"
        if logged_at < self.valid_from:
            return f"key {self.kid} is valid only from {format_time(self.valid_from)}"
        if self.revoked_at is not None and logged_at > self.revoked_at:
            return f"key {self.kid} was revoked at {format_time(self.revoked_at)}"
        if self.retired_index is not None and log_index > self.retired_index:
            return f"key {self.kid} was retired"
        return None
