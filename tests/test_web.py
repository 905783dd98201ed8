"""The web pages through Flask's test client, on both databases: content, errors, languages, evidence."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest
import segno
from flask_babel import force_locale, gettext

from registry.crypto import jws, keys
from registry.http.auth import public
from registry.http.web import i18n, views
from registry.runtime import Runtime

from .helpers import licence_fields
from .web_support import demo_licence, load_demo

MK = demo_licence("active-AEOF", party="MK")
QUIET = demo_licence("active-AEOS", public=False)  # holder did not consent to publicity
SUSPENDED = demo_licence("suspended")


@pytest.fixture
def tokens(registry, tmp_path):
    return load_demo(registry, tmp_path)


def page(client, path, **kwargs):
    response = client.get(path, **kwargs)
    assert response.mimetype == "text/html"
    return response, response.get_data(as_text=True)


def main_of(html: str) -> str:
    return html[html.index("<main"):html.index("</main>")]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def translated(app, locale: str, message: str, **variables) -> str:
    with app.test_request_context(), force_locale(locale):
        return gettext(message, **variables)


# --- home -------------------------------------------------------------------------------------


def test_home_lists_parties_agreements_and_links(tokens, client):
    response, html = page(client, "/?lang=en")
    assert response.status_code == 200
    assert '<html lang="en">' in html
    for name in ("North Macedonia", "Kosovo", "Customs Administration of Serbia", "CEFTA-AP5", "RS-MK-AEO-2023"):
        assert name in html
    for link in ('href="/check"', 'href="/evidence"', 'href="/docs"'):
        assert link in html
    assert "green lane at border crossings" in html


def test_home_in_macedonian_names_parties_in_macedonian(tokens, client):
    _, html = page(client, "/?lang=mk")
    assert '<html lang="mk">' in html
    assert "Северна Македонија" in html and "Регистар за взаемно признавање на ОЕО" in html


# --- the trader's check --------------------------------------------------------------------------


def test_check_form_alone(client):
    response, html = page(client, "/check")
    assert response.status_code == 200
    assert '<label for="operator_id">' in html and '<label for="certificate">' in html
    assert 'aria-describedby="operator_id-hint"' in html
    assert "result-title" not in html


def test_successful_check_shows_status_validity_and_recognition(tokens, client):
    response, html = page(client, "/check", query_string={"operator_id": MK.operator_id,
                                                          "certificate": MK.certificate.lower(), "lang": "en"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = text_of(main_of(html))
    assert "Valid: this licence is recognised now" in text
    assert "Vardar Logistics DOOEL" in text  # the demo's MK holder consented to publicity
    assert "Active" in text and "AEO for customs simplifications and for security and safety (AEOF)" in text
    assert "Protocol between Serbia and North Macedonia" in text  # RS recognises under the bilateral protocol
    assert "National licence: the issuing party itself" in text
    assert f'href="/certificate/{MK.certificate}?operator={MK.operator_id}"' in html


def test_check_hides_the_holder_without_public_consent(tokens, client):
    _, html = page(client, "/check", query_string={"operator_id": QUIET.operator_id,
                                                   "certificate": QUIET.certificate})
    api = client.get("/api/v1/public/check", query_string={"operator_id": QUIET.operator_id,
                                                           "certificate": QUIET.certificate}).get_json()
    assert api["operator"] is None
    assert "the holder has not agreed to publish its name" in html


def test_suspended_licence_is_explained(tokens, client):
    _, html = page(client, "/check", query_string={"operator_id": SUSPENDED.operator_id,
                                                   "certificate": SUSPENDED.certificate, "lang": "sq"})
    text = text_of(main_of(html))
    assert translated(client.application, "sq", "Not valid now: %(reason)s",
                      reason=translated(client.application, "sq", "Suspended")) in text
    assert "pezulluar" in text
    assert "Nijedna" not in text  # no other language leaks in


def test_mismatch_gives_the_same_404_page_for_either_number(tokens, client):
    other = demo_licence("active-AEOF", party="RS")
    bodies = []
    for operator, certificate in ((MK.operator_id, other.certificate), (other.operator_id, MK.certificate),
                                  (MK.operator_id, "MKAEOF999999")):
        response, html = page(client, "/check", query_string={"operator_id": operator, "certificate": certificate})
        assert response.status_code == 404
        bodies.append(main_of(html).split('<form')[0])
    assert bodies[0] == bodies[1] == bodies[2]
    assert "No licence matches this operator id together with this certificate number" in bodies[0]


def test_malformed_and_missing_fields_are_named(tokens, client):
    response, html = page(client, "/check", query_string={"operator_id": "MK4000000001002", "certificate": "7"})
    assert response.status_code == 400
    assert "check digit does not match" in html  # a valid shape with a wrong EDB check digit
    assert "It begins with the two-letter code of the issuing party" in html
    assert 'aria-describedby="operator_id-hint operator_id-error"' in html and 'aria-invalid="true"' in html
    assert 'href="#certificate"' in html  # the error summary links to the field
    response, html = page(client, "/check", query_string={"operator_id": "", "certificate": MK.certificate})
    assert response.status_code == 400 and "Enter the operator id." in html
    response, html = page(client, "/check", query_string={"operator_id": "??", "certificate": MK.certificate})
    assert "This is not an operator id." in html


def test_page_and_api_share_one_rate_limit(tokens, client, app):
    limiter = Runtime.of(app).public_checks
    query = {"operator_id": MK.operator_id, "certificate": MK.certificate}
    for _ in range(limiter.limit - 1):
        assert client.get("/api/v1/public/check", query_string=query).status_code == 200
    assert client.get("/check", query_string=query).status_code == 200
    response, html = page(client, "/check", query_string={**query, "lang": "sr"})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert translated(app, "sr_Latn", "Too many checks") in html
    assert client.get("/api/v1/public/check", query_string=query).status_code == 429
    assert client.get(f"/certificate/{MK.certificate}", query_string={"operator": MK.operator_id}).status_code == 429


# --- the printable sheet --------------------------------------------------------------------------


def test_sheet_carries_a_qr_code_of_the_live_check(tokens, client):
    response, html = page(client, f"/certificate/{MK.certificate}", query_string={"operator": MK.operator_id})
    assert response.status_code == 200
    live = f"http://localhost/check?operator_id={MK.operator_id}&certificate={MK.certificate}"
    assert html.count(live.replace("&", "&amp;")) == 2  # the link under the code, and its text
    svg = html[html.index("<svg"):html.index("</svg>") + 6]
    assert svg == segno.make(live, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff",
                                                         title=MK.certificate, svgclass="qr", omitsize=True)
    assert "Valid: this licence is recognised now" in html


def test_sheet_mismatch_and_broken_links(tokens, client):
    response, html = page(client, f"/certificate/{MK.certificate}", query_string={"operator": QUIET.operator_id})
    assert response.status_code == 404 and "No licence found" in html and "<svg" not in html
    response, html = page(client, f"/certificate/{MK.certificate}")
    assert response.status_code == 400 and "Incomplete link" in html


# --- evidence -------------------------------------------------------------------------------------


def answer_of(client, token, operator, **query):
    response = client.get(f"/api/v1/verify/{operator}", query_string=query,
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def post_evidence(client, document=None, *, upload=None, lang="en"):
    data = {}
    if document is not None:
        data["document"] = document
    if upload is not None:
        data["file"] = (io.BytesIO(upload), "answer.json")
    response = client.post(f"/evidence?lang={lang}", data=data, content_type="multipart/form-data")
    return response, text_of(main_of(response.get_data(as_text=True)))


def test_answer_with_proofs_proves_its_licences_in_the_log(tokens, client):
    answer = answer_of(client, tokens["AL"]["customs"], MK.operator_id, proofs="true", nonce="decl-42")
    response, text = post_evidence(client, upload=answer.encode())
    assert response.status_code == 200
    assert "A genuine verification answer" in text and "Still fresh" in text
    assert "the customs of Albania" in text and "decl-42" in text
    assert "inclusion proofs: 1 of 1" in text
    assert "CEFTA-AP5" in text


def test_answer_without_proofs_is_checked_against_the_registrys_own_log(tokens, client):
    answer = answer_of(client, tokens["AL"]["customs"], MK.operator_id)
    response, text = post_evidence(client, answer)
    assert response.status_code == 200
    assert "inclusion proofs: 0 of 1" in text
    assert "without a proof in the answer itself: 1" in text


def test_batch_answer_without_statements(tokens, client):
    response = client.post("/api/v1/verify:batch", json={"operator_ids": [MK.operator_id, "XX1"]},
                           headers={"Authorization": f"Bearer {tokens['RS']['customs']}"})
    _, text = post_evidence(client, response.get_data(as_text=True))
    assert "A genuine verification answer" in text
    assert "Named without their signed statement, as batch answers are by default: 1" in text
    assert "Unknown operator" in text


def test_stale_answer_and_a_grown_log(tokens, client, registry, now):
    answer = answer_of(client, tokens["AL"]["customs"], MK.operator_id, proofs="true")
    now.advance(hours=2)
    assert registry.put("MKAEOS009999", licence_fields("MK", 9999, type="AEOS"), code="MK").status_code == 201
    _, text = post_evidence(client, answer)
    assert "No longer fresh" in text and "2 hours ago" in text
    assert "The registry has logged 1 entry since." in text


def test_snapshot_says_what_it_holds_and_how_old_it_is(tokens, client, registry, now):
    snapshot = client.get("/api/v1/snapshot", headers={"Authorization": f"Bearer {tokens['AL']['customs']}"})
    now.advance(minutes=30)
    response, text = post_evidence(client, upload=snapshot.get_data())
    assert response.status_code == 200
    assert "A genuine snapshot" in text and "Up to date" in text and "30 minutes before this check" in text
    assert "Parties with their keys 7" in text and "Agreements 2" in text
    assert registry.put("MKAEOS009999", licence_fields("MK", 9999, type="AEOS"), code="MK").status_code == 201
    _, text = post_evidence(client, snapshot.get_data(as_text=True), lang="mk")
    assert translated(client.application, "mk", "Not up to date") in text


def test_tampered_answer_does_not_verify(tokens, client):
    document = json.loads(answer_of(client, tokens["AL"]["customs"], MK.operator_id, proofs="true"))
    document["verification"]["results"][0]["reason"] = "revoked"
    response, text = post_evidence(client, json.dumps(document))
    assert response.status_code == 400
    assert "This document proves nothing" in text and "changed after the registry signed it" in text
    assert "differs from the signed payload" in text  # the technical detail, in English


def test_document_signed_by_another_key(tokens, client):
    verification = json.loads(answer_of(client, tokens["AL"]["customs"], MK.operator_id))["verification"]
    forged = {"verification": verification, "jws": jws.sign(verification, keys.generate(), jws.TYP_VERIFICATION)}
    response, text = post_evidence(client, json.dumps(forged))
    assert response.status_code == 400 and "not signed by this registry's key" in text


@pytest.mark.parametrize(("document", "expected"), [
    ("", "Paste a document or choose a file."),
    ("{not json", "This is not a JSON document."),
    ('{"hello": 1}', "This is not a verification answer or a snapshot"),
    ('{"jws": "a.b.c"}', "This is not a verification answer or a snapshot"),
])
def test_documents_that_are_not_evidence(tokens, client, document, expected):
    response, text = post_evidence(client, document)
    assert response.status_code == 400 and expected in text


def test_a_licence_statement_is_not_an_answer(tokens, client, registry):
    statement = registry.put("MKAEOS009999", licence_fields("MK", 9999, type="AEOS")).get_json()["statement"]
    _, text = post_evidence(client, json.dumps({"jws": statement}))
    assert "This is not a verification answer or a snapshot" in text and "aeo-verification+jws" in text


def test_upload_that_is_not_text(tokens, client):
    response, text = post_evidence(client, upload=b"\xff\xfe\x00binary")
    assert response.status_code == 400 and "This is not a JSON document." in text


def test_too_large_a_document_gets_a_friendly_413(tokens, client, app):
    # The page has a limit of its own, above the API's: the registry's own evidence runs larger.
    app.config["MAX_CONTENT_LENGTH"] = 1024
    app.config["REGISTRY"] = dataclasses.replace(app.config["REGISTRY"], evidence_max_bytes=2048)
    response, text = post_evidence(client, "x" * 1500, lang="sq")
    assert response.status_code != 413
    response, text = post_evidence(client, "x" * 4096, lang="sq")
    assert response.status_code == 413
    assert translated(app, "sq", "The document could not be checked") in text and "2 KiB" in text


# --- languages ------------------------------------------------------------------------------------


def test_language_from_query_is_remembered_in_a_cookie(client):
    response, html = page(client, "/check?lang=sq")
    assert '<html lang="sq">' in html
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=sq;") and "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert {"Cookie", "Accept-Language"} <= set(response.vary)
    _, html = page(client, "/check")
    assert '<html lang="sq">' in html
    _, html = page(client, "/check?lang=xx")
    assert '<html lang="sq">' in html  # an unknown choice changes nothing


@pytest.mark.parametrize(("header", "tag"), [
    ("mk-MK,mk;q=0.9,en;q=0.5", "mk"),
    ("sq", "sq"),
    ("sr-Latn-RS", "sr-Latn"),
    ("bs-BA,bs;q=0.9", "sr-Latn"),  # Bosnian, Croatian and Montenegrin readers get Serbian Latin
    ("de-DE,fr;q=0.8", "en"),
    ("de-DE,sq;q=0.5", "sq"),
])
def test_browser_preference_decides_without_a_choice(client, header, tag):
    _, html = page(client, "/", headers={"Accept-Language": header})
    assert f'<html lang="{tag}">' in html


def test_every_language_has_a_switcher_link_to_the_same_page(tokens, client):
    _, html = page(client, "/check", query_string={"operator_id": MK.operator_id, "certificate": MK.certificate})
    for language in i18n.LANGUAGES.values():
        assert f'lang="{language.tag}" hreflang="{language.tag}"' in html
        assert f"lang={language.code}" in html
    assert f"/check?operator_id={MK.operator_id}&amp;certificate={MK.certificate}&amp;lang=mk" in html


def test_dates_follow_the_reader(tokens, client):
    query = {"operator_id": MK.operator_id, "certificate": MK.certificate}
    checked = {lang: text_of(main_of(page(client, "/check", query_string={**query, "lang": lang})[1]))
               for lang in i18n.LANGUAGES}
    assert "November 27, 2026" not in checked["en"]  # times are medium: Nov 27, 2026, 10:00:00 AM
    assert "Nov 27, 2026, 10:00:00 AM UTC" in checked["en"]
    assert "27.11.2026" in checked["mk"]
    assert "27 nën 2026" in checked["sq"]
    assert "27. 11. 2026." in checked["sr"]


# --- pages in general -----------------------------------------------------------------------------


def test_every_page_is_marked_public(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("web.")}
    assert endpoints == {"web.index", "web.check", "web.certificate", "web.certificate_proof", "web.evidence_page",
                         "web.asset"}
    for endpoint in endpoints:
        assert app.view_functions[endpoint].access == public(lambda: None).access


def test_pages_need_no_inline_script_or_style(tokens, client):
    """So that a strict Content-Security-Policy (self only, no inline) can cover them."""
    for path in ("/", "/check", f"/check?operator_id={MK.operator_id}&certificate={MK.certificate}",
                 f"/certificate/{MK.certificate}?operator={MK.operator_id}", "/evidence"):
        _, html = page(client, path)
        assert " style=" not in html and "<style" not in html
        assert all('src="/assets/' in tag for tag in re.findall(r"<script[^>]*>", html))
        assert "http://" not in html.replace("http://localhost/", "")  # nothing from another origin


def test_assets_are_served_locally(client):
    with client.get(f"/assets/site.css?v={views.ASSET_VERSION}") as response:
        assert response.status_code == 200 and response.mimetype == "text/css"
        assert "@page" in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "public, max-age=604800"
    assert client.get("/assets/../app.py").status_code == 404


def test_unknown_page_stays_problem_json_and_page_errors_are_html(tokens, client, monkeypatch):
    # Routing errors happen before a page is chosen: the registry's problem+json, as for the API.
    assert client.get("/no-such-page").mimetype == "application/problem+json"

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(views.parties, "parties_json", broken)
    response, html = page(client, "/?lang=mk")
    assert response.status_code == 500
    assert translated(client.application, "mk", "Something went wrong") in html
    assert "secret detail" not in html and "Traceback" not in html


def test_unavailable_registry_is_explained(app, client):
    from registry.services import log

    with Runtime.of(app).database.session() as session:
        session.delete(log.latest_checkpoint(session))
        session.commit()
    response, html = page(client, "/check?operator_id=MK4000000001001&certificate=MKAEOF001000")
    assert response.status_code == 503 and "The registry is not ready" in html


def test_answer_freshness_window_is_the_configured_ttl(tokens, client, now):
    answer = answer_of(client, tokens["AL"]["customs"], MK.operator_id)
    now.advance(seconds=client.application.config["REGISTRY"].answer_ttl_seconds - 60)
    _, text = post_evidence(client, answer)
    assert "Still fresh" in text and "in 1 minute" in text
