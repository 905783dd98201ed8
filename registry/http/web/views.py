"""The pages: home, the trader's check, the printable recognition sheet, the evidence checker."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import segno
from flask import Blueprint, current_app, render_template, request, send_from_directory, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ... import clock
from ...domain import identifiers
from ...errors import InvalidInputError, NotFoundError, RegistryError, UnavailableError
from ...services import agreements, evidence, log, parties, verification, witnesses
from ..auth import public, public_check_wait
from ..context import keyring
from ..context import reader as context_reader
from ..context import session as db_session
from . import i18n

bp = Blueprint("web", __name__, template_folder="templates")
STATIC = Path(__file__).parent / "static"
# Changes with the files, so browsers may keep them a long time.
ASSET_VERSION = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(STATIC.iterdir()))).hexdigest()[:10]
NO_STORE = {"Cache-Control": "no-store"}  # answers about one operator: not for shared caches or the back button

logger = logging.getLogger(__name__)


@bp.context_processor
def _page_globals() -> dict[str, Any]:
    return {**i18n.template_globals(), **i18n.filters(), "asset": _asset_url, "switch_language": _switch_language}


@bp.after_request
def _remember_language(response):
    return i18n.remember(response)


def _asset_url(filename: str) -> str:
    return url_for("web.asset", filename=filename, v=ASSET_VERSION)


# The query parameters each page reads; no other is read or carried into a link.
# Handing request.args to url_for as they came would let ?endpoint= or
# ?_method= break the page (a 500) and ?_external=, ?_scheme= or ?_anchor=
# rewrite its language links.
PAGE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "web.index": (),
    "web.check": ("operator_id", "certificate"),
    "web.certificate": ("operator",),
    "web.certificate_proof": ("operator",),
    "web.evidence_page": (),
}


def _switch_language(code: str) -> str:
    """This page in another language, with the page's own parameters (a POSTed form falls back to its empty page)."""
    endpoint = request.endpoint if request.endpoint in PAGE_PARAMETERS else "web.index"
    kept = {name: request.args[name] for name in PAGE_PARAMETERS[endpoint] if name in request.args}
    path = request.view_args if endpoint == request.endpoint else None
    return url_for(endpoint, **(path or {}), **kept, lang=code)


def _page(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any):
    return render_template(template, **context), status, headers or {}


@bp.route("/assets/<path:filename>")
@public
def asset(filename):
    """The pages' own style sheet and script, served here: no other origin is ever asked."""
    return send_from_directory(STATIC, filename, max_age=7 * 24 * 3600)


# --- home ------------------------------------------------------------------------------------


def _agreement_summary(entry: dict[str, Any]) -> dict[str, Any]:
    record = entry["agreement"]
    directions = record["recognition"]
    return {
        **record,
        "parties": sorted({p for d in directions for p in (d["verifier"], d["issuer"])}),
        "types": [t for t in ("AEOC", "AEOS", "AEOF") if any(t in d["types"] for d in directions)],
    }


@bp.route("/")
@public
def index():
    """What the registry is, its parties and agreements."""
    session = db_session()
    return _page("web/index.html",
                 parties=parties.parties_json(session),
                 agreements=[_agreement_summary(a) for a in agreements.listing(session)],
                 log_size=log.tree_size(context_reader()), witnesses=witnesses.status(session))


# --- the trader's check ----------------------------------------------------------------------


def _field_problem(field: str, raw: str) -> str:
    """Which plain message fits a field the service refused."""
    if not raw.strip():
        return "missing"
    if field == "operator_id" and identifiers.OPERATOR_ID.match(identifiers.normalise(raw)):
        return "national_number"
    return "malformed"


def _field_errors(fields: dict[str, str]) -> dict[str, str]:
    """Every field's problem at once, by the domain's own rules.

    Malformed input is refused before the rate limiter counts it: it looks
    nothing up, so it reveals nothing.
    """
    validators = {"operator_id": identifiers.operator_id, "certificate": identifiers.certificate}
    errors = {}
    for name, raw in fields.items():
        try:
            validators[name](raw)
        except identifiers.IdentifierError:
            errors[name] = _field_problem(name, raw)
    return errors


def _lookup(operator_id: str, certificate: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The self-check through the same rate limit and service as GET /api/v1/public/check.

    Returns the page context (``result`` on success, else ``problem`` or
    ``errors`` per field), the HTTP status and headers to answer with.
    """
    errors = _field_errors({"operator_id": operator_id, "certificate": certificate})
    if errors:
        return {"errors": errors}, 400, NO_STORE
    wait = public_check_wait()
    if wait is not None:
        return {"problem": "rate_limited", "retry_after": wait}, 429, {**NO_STORE, "Retry-After": str(wait)}
    session = db_session()
    try:
        result = verification.public_check(session, operator_id, certificate, clock.now())
    except InvalidInputError as exc:
        raw = {"operator_id": operator_id, "certificate": certificate}
        return {"errors": {name: _field_problem(name, raw.get(name, "")) for name in exc.errors or raw}}, 400, NO_STORE
    except NotFoundError:
        return {"problem": "not_found"}, 404, NO_STORE
    except UnavailableError:
        return {"problem": "unavailable"}, 503, NO_STORE
    context = {
        "result": result,
        "parties": {p["code"]: p for p in parties.parties_json(session)},
        "agreement_titles": {a["agreement"]["id"]: a["agreement"]["title"] for a in agreements.listing(session)},
        "operator_id": identifiers.normalise(operator_id),
    }
    return context, 200, NO_STORE


@bp.route("/check")
@public
def check():
    """The trader's self-check: operator id and certificate number."""
    form = {"operator_id": request.args.get("operator_id", ""), "certificate": request.args.get("certificate", "")}
    if "operator_id" not in request.args and "certificate" not in request.args:
        return _page("web/check.html", form=form, errors={})
    context, status, headers = _lookup(form["operator_id"], form["certificate"])
    if "result" in context:
        context["sheet_url"] = url_for("web.certificate", certificate=context["result"]["certificate"],
                                       operator=context["operator_id"])
        context["proof_url"] = _proof_url(context)
    return _page("web/check.html", status, headers, **{"errors": {}, **context, "form": form})


def _qr_svg(url: str, title: str) -> str:
    return segno.make(url, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff", title=title,
                                                 svgclass="qr", omitsize=True)


@bp.route("/certificate/<certificate>")
@public
def certificate(certificate):
    """A printable recognition sheet with a QR code that links to the live check."""
    context, status, headers = _lookup(request.args.get("operator", ""), certificate)
    if "result" not in context:
        if context.get("errors"):
            # A sheet's link names both numbers; one missing or malformed is a broken link.
            context["problem"] = "bad_link"
        return _page("web/certificate.html", status, headers, **context)
    live = url_for("web.check", operator_id=context["operator_id"], certificate=context["result"]["certificate"],
                   _external=True)
    return _page("web/certificate.html", status, headers, **context, live_url=live, proof_url=_proof_url(context),
                 qr=_qr_svg(live, context["result"]["certificate"]))


def _proof_url(context: dict[str, Any]) -> str:
    return url_for("web.certificate_proof", certificate=context["result"]["certificate"],
                   operator=context["operator_id"])


@bp.route("/certificate/<certificate>/proof")
@public
def certificate_proof(certificate):
    """The licence's current statement as a proof file (.tlog-proof): its log entry, inclusion and witnesses.

    Behind the same two numbers and rate limit as the sheet. The file holds
    the leaf only (identifiers and the statement's digest), never the
    statement, whose operator name and address the holder may not have
    agreed to show.
    """
    context, status, headers = _lookup(request.args.get("operator", ""), certificate)
    if "result" not in context:
        if context.get("errors"):
            context["problem"] = "bad_link"
        return _page("web/certificate.html", status, headers, **context)
    text, filename = witnesses.licence_proof_file(db_session(), context["result"]["certificate"])
    return current_app.response_class(text, mimetype="text/plain", headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'})


# --- evidence --------------------------------------------------------------------------------


def _submitted_document() -> str:
    """The uploaded file if one was chosen, else the pasted text."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        data = upload.read()
        if data:
            try:
                return data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise evidence.EvidenceError("not_json", "the file is not UTF-8 text") from None
    return request.form.get("document", "")


@bp.route("/evidence", methods=["GET", "POST"])
@public
def evidence_page():
    """Check a stored verification answer or a snapshot against the registry's published keys."""
    if request.method == "GET":
        return _page("web/evidence.html")
    # No CSRF token: this form changes nothing. It checks the posted document
    # against public keys and shows the result to whoever posted it; no cookie
    # grants any right here (the language cookie only picks words), and
    # another site that makes a browser post to it cannot read the answer.
    # The registry's own evidence runs past the API's body limit (a 5,000-id answer with statements
    # and proofs is some 20 MB), so this page takes its own; pasted text counts against it too.
    limit = request.max_content_length = request.max_form_memory_size = (
        current_app.config["REGISTRY"].evidence_max_bytes)
    policy_form = {"witnesses": "", "quorum": ""}
    try:
        text = _submitted_document()  # reads the form first: too large a body is a 413 here
        policy_form = {name: request.form.get(name, "") for name in policy_form}
        policy = evidence.policy_from_form(policy_form["witnesses"], policy_form["quorum"])
        report = evidence.examine(db_session(), keyring(), text, clock.now(), policy)
    except RequestEntityTooLarge:
        return _page("web/evidence.html", 413, NO_STORE, problem="too_large", limit=limit)
    except evidence.EvidenceError as exc:
        return _page("web/evidence.html", 400, NO_STORE, problem=exc.problem, detail=exc.detail,
                     document=request.form.get("document", "") if exc.problem != "empty" else "", policy=policy_form)
    names = {p["code"]: p["name"] for p in parties.parties_json(db_session())}
    return _page("web/evidence.html", 200, NO_STORE, report=report, party_names=names, now=clock.now(),
                 policy=policy_form)


# --- errors ----------------------------------------------------------------------------------


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return _page("web/error.html", error.code or 500, status_code=error.code or 500)


@bp.errorhandler(RegistryError)
def _registry_error(error: RegistryError):
    return _page("web/error.html", error.status, error.headers, status_code=error.status)


@bp.errorhandler(Exception)
def _unexpected(error: Exception):
    logger.exception("unhandled error on a page")
    return _page("web/error.html", 500, status_code=500)
