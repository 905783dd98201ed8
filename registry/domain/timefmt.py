"""RFC 3339 times in UTC with ``Z``, and the ``at`` parameter's two forms."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import TypeVar

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
T = TypeVar("T")


# The parsers and format_time are memoised: pure, with immutable results, and
# called for every licence in a 5,000-id answer over the few values a register
# holds (a bulk load gives thousands of licences one time; dates repeat by day).
_memo = functools.lru_cache(maxsize=4096)


def _parser(form: Callable[[str], object], refusal: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """A memoised parser of the strings ``form`` accepts; anything else is ``ValueError(refusal)``.

    Non-strings are refused before the memo, which could not hash a list.
    """
    def decorate(parse: Callable[[str], T]) -> Callable[[str], T]:
        @_memo
        def memoised(value: str) -> T:
            if not form(value):
                raise ValueError(refusal)
            return parse(value)

        @functools.wraps(parse)
        def checked(value: str) -> T:
            if type(value) is str:
                return memoised(value)
            if not isinstance(value, str):
                raise ValueError(refusal)
            return memoised(str(value))  # a str subclass, as a plain str

        return checked

    return decorate


@_parser(_RFC3339.match, "not an RFC 3339 timestamp with a time zone, e.g. 2026-11-27T10:00:00Z")
def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp with an explicit offset, returned in UTC."""
    if len(value) == 20 and value[19] == "Z":
        # The form every statement the registry writes uses: already UTC, nothing to cut.
        return datetime.fromisoformat(value)
    head, _, fraction = value.partition(".")
    if fraction:
        # Python keeps microseconds; finer digits are cut, not rounded.
        digits = re.match(r"\d+", fraction).group()
        value = f"{head}.{digits[:6]}{fraction[len(digits):]}"
    try:
        return datetime.fromisoformat(value.replace("z", "Z")).astimezone(UTC)
    except OverflowError as exc:
        # 0001-01-01T00:00:00+01:00 is before the first moment Python can hold in UTC.
        raise ValueError("out of the range of representable times") from exc


@_parser(_DATE.fullmatch, "not a date in the form YYYY-MM-DD")
def parse_date(value: str) -> date:
    return date.fromisoformat(value)


def parse_moment(value: str) -> datetime:
    """``at``: an RFC 3339 timestamp, or a date meaning the start of that day in UTC."""
    if isinstance(value, str) and len(value) == 10:
        return datetime.combine(parse_date(value), time(), UTC)
    return parse_time(value)


@_memo
def format_time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    # isoformat, not strftime: %Y leaves years before 1000 unpadded ("57-09-18"),
    # and isoformat is several times faster (this runs for every licence in a 5,000-id answer).
    text = moment.replace(tzinfo=None, microsecond=0).isoformat()
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def now_utc() -> datetime:
    """The current second in UTC: registry-made times carry no fractions."""
    return datetime.now(UTC).replace(microsecond=0)
