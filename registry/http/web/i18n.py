"""The reader's language, and plain words for the registry's codes in each of them.

Four languages: English, Macedonian, Albanian and Serbian in Latin script.
``?lang=`` chooses one and a cookie remembers it; otherwise the browser's
``Accept-Language`` decides, with the nearest of the four for related
languages (Bosnian, Croatian and Montenegrin readers get Serbian Latin).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from flask import Flask, Response, g, request
from flask_babel import Babel, format_date, format_datetime, format_decimal, format_timedelta, get_locale, lazy_pgettext
from flask_babel import lazy_gettext as _l

from ...domain.timefmt import parse_time

COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
TRANSLATIONS = Path(__file__).parent / "translations"


@dataclass(frozen=True)
class Language:
    code: str  # as in ?lang=
    locale: str  # Babel's locale: catalogs, dates, country names
    tag: str  # BCP 47, for the lang attribute
    name: str  # in the language itself, for the switcher


LANGUAGES = {
    language.code: language
    for language in (
        Language("en", "en", "en", "English"),
        Language("mk", "mk", "mk", "Македонски"),
        Language("sq", "sq", "sq", "Shqip"),
        Language("sr", "sr_Latn", "sr-Latn", "Srpski"),
    )
}
DEFAULT = "en"
# Browser languages served best by one of the four.
NEAREST = {"bs": "sr", "hr": "sr", "sh": "sr", "cnr": "sr", "me": "sr"}


def _from_browser() -> str:
    for value, _quality in request.accept_languages:
        primary = value.lower().replace("_", "-").split("-")[0]
        code = primary if primary in LANGUAGES else NEAREST.get(primary)
        if code:
            return code
    return DEFAULT


def chosen() -> Language:
    """The page's language: ?lang=, else the cookie, else the browser's preference."""
    if "language" not in g:
        asked = request.args.get("lang", "")
        remembered = request.cookies.get(COOKIE, "")
        code = asked if asked in LANGUAGES else remembered if remembered in LANGUAGES else _from_browser()
        g.language = LANGUAGES[code]
    return g.language


def remember(response: Response) -> Response:
    """Keep an explicit ?lang= choice in a cookie; the page depends on cookie and browser language."""
    asked = request.args.get("lang", "")
    if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
        response.set_cookie(COOKIE, asked, max_age=COOKIE_MAX_AGE, path="/", samesite="Lax",
                            secure=request.is_secure, httponly=True)
    response.vary.update(("Cookie", "Accept-Language"))
    return response


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    Babel(app, locale_selector=lambda: chosen().locale)


# --- formatting --------------------------------------------------------------------------------


def day(value: date | str | None) -> str:
    """A date in the reader's format."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return format_date(value, "long")


def moment(value: datetime | str | None) -> str:
    """A time in the reader's format, in UTC, which the registry keeps."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = parse_time(value)
    return f"{format_datetime(value, 'medium')} UTC"


def relative(delta: timedelta) -> str:
    """``in 5 minutes`` for a positive delta, ``5 minutes ago`` for a negative one."""
    return format_timedelta(delta, granularity="minute", add_direction=True)


def duration(delta: timedelta | int) -> str:
    """A length of time (a timedelta or seconds), without a direction."""
    if isinstance(delta, int):
        delta = timedelta(seconds=delta)
    return format_timedelta(delta, granularity="second")


def file_size(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{format_decimal(round(size / scale, 1))} {unit}"
    return f"{format_decimal(size)} B"


def party_name(code: str, registered: str | None = None) -> str:
    """A party's name in the reader's language where CLDR knows it, else as registered."""
    if str(get_locale()) != "en":
        localised = get_locale().territories.get(code)
        if localised:
            return localised
    return registered or code


# --- plain words for codes ----------------------------------------------------------------------

REASON_TITLES = {
    "recognised": _l("Recognised"),
    "unknown_operator": _l("Unknown operator"),
    "not_yet_valid": _l("Not valid yet"),
    "expired": _l("Expired"),
    "suspended": _l("Suspended"),
    "revoked": _l("Revoked"),
    "annulled": _l("Annulled"),
    "no_agreement": _l("No agreement"),
    "type_not_covered": _l("Type not covered"),
    "no_consent": _l("No consent to share"),
}

REASON_TEXTS = {
    "recognised": _l("The licence is active and within its validity, and the party recognises it: as its own "
                     "licence, or under an agreement in force."),
    "unknown_operator": _l("The registry knows no AEO licence for this operator id."),
    "not_yet_valid": _l("The licence exists, but its validity has not started yet."),
    "expired": _l("The licence's validity has ended. The holder needs a renewed authorisation from its "
                  "customs administration."),
    "suspended": _l("The issuing customs administration has suspended the licence. It has no effect while "
                    "suspended and may be reinstated later."),
    "revoked": _l("The issuing customs administration has revoked the licence, or the holder surrendered it. "
                  "This is final."),
    "annulled": _l("The licence has been annulled: it counts as never having been valid, also for the past."),
    "no_agreement": _l("No agreement in force makes this party recognise licences issued by the holder's "
                       "customs administration."),
    "type_not_covered": _l("An agreement is in force, but it does not cover this type of licence."),
    "no_consent": _l("The holder has not agreed to share its AEO data with partner customs, so partners are "
                     "told nothing about the licence."),
}

STATUS_TITLES = {
    "active": _l("Active"),
    "suspended": _l("Suspended"),
    "revoked": _l("Revoked"),
    "annulled": _l("Annulled"),
}

STATUS_TEXTS = {
    "active": _l("The licence is in force."),
    "suspended": _l("The licence is temporarily without effect; it can be reinstated."),
    "revoked": _l("The licence has been withdrawn for good, also when its holder surrendered it."),
    "annulled": _l("The licence has been cancelled as if it had never been granted."),
}

TYPE_TITLES = {
    "AEOC": _l("AEO for customs simplifications (AEOC)"),
    "AEOS": _l("AEO for security and safety (AEOS)"),
    "AEOF": _l("AEO for customs simplifications and for security and safety (AEOF)"),
}

# An AEOF licence suspended in one part counts as the other part alone.
SCOPE_TEXTS = {
    "AEOC": _l("Only its customs simplifications part (AEOC) is suspended: meanwhile the licence counts for "
               "security and safety (AEOS) alone."),
    "AEOS": _l("Only its security and safety part (AEOS) is suspended: meanwhile the licence counts for "
               "customs simplifications (AEOC) alone."),
}

BENEFITS = {
    "fewer_controls": _l("fewer physical and document controls"),
    "priority": _l("priority when selected for control"),
    "green_lane": _l("green lane at border crossings"),
    "simplified_guarantee": _l("simplified customs guarantee"),
    "joint_inspections": _l("joint inspections with partner customs"),
}

# An agreement's status; the context keeps it apart from a licence's (their grammatical gender differs).
AGREEMENT_STATUSES = {
    "in_force": lazy_pgettext("agreement", "In force"),
    "suspended": lazy_pgettext("agreement", "Suspended"),
    "terminated": lazy_pgettext("agreement", "Terminated"),
}


def reason_title(code: str) -> str:
    return str(REASON_TITLES.get(code, code))


def reason_text(code: str) -> str:
    return str(REASON_TEXTS.get(code, ""))


def benefit(code: str) -> str:
    return str(BENEFITS.get(code, code.replace("_", " ")))


def filters() -> dict:
    return {"day": day, "moment": moment, "relative": relative, "duration": duration, "file_size": file_size,
            "reason_title": reason_title, "reason_text": reason_text, "benefit": benefit}


def template_globals() -> dict:
    return {"LANGUAGES": LANGUAGES, "language": chosen, "party_name": party_name,
            "STATUS_TITLES": STATUS_TITLES, "STATUS_TEXTS": STATUS_TEXTS, "TYPE_TITLES": TYPE_TITLES,
            "SCOPE_TEXTS": SCOPE_TEXTS, "AGREEMENT_STATUSES": AGREEMENT_STATUSES}
