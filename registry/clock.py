"""The registry's idea of now; tests replace ``now`` instead of sleeping."""

from .domain.timefmt import now_utc


def now():
    return now_utc()
