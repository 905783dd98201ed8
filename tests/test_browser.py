"""The pages in a real browser: Debian's Chromium, headless, driven by Playwright.

Nothing downloads a browser: Playwright launches /usr/bin/chromium, which
`make test` installs (target browser-deps). Without it these tests skip,
saying why, so that a plain `pytest` on a laptop runs everything else;
under CI (``CI=true``, which .ci/run sets) they fail instead, so CI cannot
pass without having run them. Screenshots, PDFs of the printed sheet and
page sources land in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import random
import threading
from contextlib import suppress
from pathlib import Path

import pytest
from flask_babel import force_locale, gettext
from werkzeug.serving import make_server

from registry.http.web import i18n

from .web_support import demo_licence, load_demo

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Headless on a closed network: no sandbox as root, and no calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PORTS = range(5300, 5400)
VIEWPORT = {"width": 1100, "height": 900}

MK = demo_licence("active-AEOF", party="MK")
SUSPENDED = demo_licence("aeof-part-suspended")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing: run `make browser-deps` (make test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tokens(registry, tmp_path):
    return load_demo(registry, tmp_path)


@pytest.fixture
def live(app, tokens):
    """The test app served on a free port in 5300-5399, in a thread of this process (so time stays frozen)."""
    server = None
    for port in random.sample(PORTS, len(PORTS)):
        with suppress(OSError, SystemExit):  # werkzeug exits when the port is taken
            server = make_server("127.0.0.1", port, app, threaded=True)
            break
    assert server is not None, "no free port in 5300-5399"
    thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


class Tab:
    """A browser page that records console errors and failed requests."""

    def __init__(self, browser, base: str, locale: str = "en-GB"):
        self.context = browser.new_context(locale=locale, viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.base = base
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("requestfailed", lambda r: self.problems.append(f"{r.url}: {r.failure}"))
        # A page may answer 404 or 429 on purpose; what it loads (styles, scripts, icons) may not fail.
        self.page.on("response", lambda r: r.request.resource_type != "document" and r.status >= 400
                     and self.problems.append(f"{r.url}: {r.status}"))

    def _console(self, message) -> None:
        # Chromium reports every 4xx document on the console too; the response handler sees those.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(message.text)

    def open(self, path: str):
        response = self.page.goto(self.base + path)
        return response

    def shot(self, name: str, full_page: bool = True) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)
        (ARTIFACTS / f"{name}.html").write_text(self.page.content())

    def text(self, selector: str) -> str:
        return " ".join(self.page.inner_text(selector).split())

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser, live):
    opened = []

    def factory(locale: str = "en-GB") -> Tab:
        opened.append(Tab(browser, live, locale))
        return opened[-1]

    yield factory
    for each in opened:
        each.close()


def translated(app, language: str, message: str, **variables) -> str:
    with app.test_request_context(), force_locale(i18n.LANGUAGES[language].locale):
        return gettext(message, **variables)


# Checks that need a rendered page: labels, references, headings, names, the language.
AUDIT = """() => {
  const problems = [];
  const fields = [...document.querySelectorAll('input, textarea, select')]
    .filter(el => el.type !== 'hidden');
  for (const el of fields) {
    if (!el.labels || el.labels.length === 0) problems.push('no label: ' + (el.id || el.name));
  }
  for (const el of document.querySelectorAll('[aria-describedby]')) {
    for (const id of el.getAttribute('aria-describedby').split(/\\s+/)) {
      if (!document.getElementById(id)) problems.push('aria-describedby names a missing element: ' + id);
    }
  }
  const ids = [...document.querySelectorAll('[id]')].map(el => el.id);
  if (new Set(ids).size !== ids.length) problems.push('duplicate ids');
  const levels = [...document.querySelectorAll('h1, h2, h3, h4')].map(h => Number(h.tagName[1]));
  if (levels.filter(l => l === 1).length !== 1) problems.push('not exactly one h1');
  levels.reduce((previous, level) => {
    if (level > previous + 1) problems.push('heading skips a level');
    return level;
  }, 1);
  for (const svg of document.querySelectorAll('svg')) {
    if (!svg.querySelector('title')) problems.push('svg without a title');
  }
  for (const link of document.querySelectorAll('a')) {
    if (!link.textContent.trim()) problems.push('link without text: ' + link.href);
  }
  if (!document.documentElement.lang) problems.push('no lang attribute');
  if (!document.querySelector('a.skip-link[href="#main"]')) problems.push('no skip link');
  return problems;
}"""


def audit(tab: Tab) -> None:
    assert tab.page.evaluate(AUDIT) == []
    assert tab.problems == []


PAGES = {
    "home": ("/", "AEO mutual recognition registry"),
    "check": ("/check", "Check a licence"),
    "certificate": (f"/certificate/{MK.certificate}?operator={MK.operator_id}", "AEO recognition sheet"),
    "evidence": ("/evidence", "Check evidence"),
}


@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_every_page_in_every_language(tab, app, language):
    browser_tab = tab()
    for name, (path, heading) in PAGES.items():
        separator = "&" if "?" in path else "?"
        response = browser_tab.open(f"{path}{separator}lang={language}")
        assert response.status == 200
        page = browser_tab.page
        assert page.get_attribute("html", "lang") == i18n.LANGUAGES[language].tag
        assert browser_tab.text("h1") == translated(app, language, heading)
        switcher = page.locator("nav.languages a")
        assert switcher.count() == len(i18n.LANGUAGES)
        assert page.locator("nav.languages a[aria-current]").inner_text() == i18n.LANGUAGES[language].name
        audit(browser_tab)
        browser_tab.shot(f"{name}-{language}")


def test_keyboard_alone_reaches_the_form_and_checks(tab, app):
    browser_tab = tab("en-GB")
    page = browser_tab.page
    browser_tab.open("/check")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "operator_id":
            break
    else:
        pytest.fail("the tab order never reaches the operator id field")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # focus is visible
    page.keyboard.type(MK.operator_id.lower())
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "certificate"
    page.keyboard.type(MK.certificate)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Valid: this licence is recognised now" in browser_tab.text(".result .verdict")
    rows = page.locator("table.recognition tbody tr")
    assert rows.count() == 7  # all seven CEFTA parties recognise MK's AEOF licence
    assert "Protocol between Serbia and North Macedonia" in rows.nth(5).inner_text()
    audit(browser_tab)
    browser_tab.shot("check-success-en")
    browser_tab.open(f"/check?operator_id={MK.operator_id}&certificate={MK.certificate}&lang=mk")
    browser_tab.shot("check-success-mk")


def test_failed_checks_are_explained_at_the_field(tab, app):
    browser_tab = tab("sq-AL")
    page = browser_tab.page
    browser_tab.open("/check")
    assert page.get_attribute("html", "lang") == "sq"  # the browser's language, with no choice made
    page.fill("#operator_id", MK.operator_id)
    page.fill("#certificate", "MKAEOF999999")
    with page.expect_navigation():
        page.click("form.check-form button[type=submit]")
    assert browser_tab.text(".problem h2") == translated(app, "sq", "No licence found")
    audit(browser_tab)
    browser_tab.shot("check-failure-sq")

    page.fill("#operator_id", "MK-4000000001002")
    page.fill("#certificate", "")
    with page.expect_navigation():
        page.click("form.check-form button[type=submit]")
    for field in ("operator_id", "certificate"):
        assert page.get_attribute(f"#{field}", "aria-invalid") == "true"
        assert f"{field}-error" in page.get_attribute(f"#{field}", "aria-describedby")
    assert browser_tab.text("#certificate-error").endswith(translated(app, "sq", "Enter the certificate number."))
    assert page.locator(".error-summary a[href='#operator_id']").count() == 1
    page.click(".error-summary a[href='#operator_id']")
    audit(browser_tab)
    browser_tab.shot("check-invalid-sq")


@pytest.mark.parametrize("language", ["en", "mk", "sr"])
def test_certificate_sheet_prints_on_one_a4_page(tab, app, language):
    browser_tab = tab()
    page = browser_tab.page
    browser_tab.open(f"/certificate/{MK.certificate}?operator={MK.operator_id}&lang={language}")
    assert page.is_visible("button[data-print]")  # the script ran: self-hosted, not inline
    live_url = page.get_attribute("a.live-url", "href")
    assert live_url == f"{browser_tab.base}/check?operator_id={MK.operator_id}&certificate={MK.certificate}"
    browser_tab.shot(f"certificate-{language}")
    page.emulate_media(media="print")
    for hidden in (".site-header", ".site-footer", "button[data-print]", "nav.languages"):
        assert not page.is_visible(hidden)
    assert page.is_visible("svg.qr")
    browser_tab.shot(f"certificate-print-{language}")
    pdf = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    (ARTIFACTS / f"certificate-{language}.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type /Page>") == 1
    audit(browser_tab)


def test_partly_suspended_licence_on_the_sheet(tab, app):
    browser_tab = tab()
    browser_tab.open(f"/certificate/{SUSPENDED.certificate}?operator={SUSPENDED.operator_id}&lang=sr")
    assert translated(app, "sr", "Only its customs simplifications part (AEOC) is suspended: meanwhile the licence "
                                 "counts for security and safety (AEOS) alone.") in browser_tab.text("dl.facts")
    browser_tab.shot("certificate-part-suspended-sr")


def test_evidence_upload_and_paste(tab, app, client, tokens, tmp_path):
    answer = client.get(f"/api/v1/verify/{MK.operator_id}", query_string={"proofs": "true", "nonce": "decl-42"},
                        headers={"Authorization": f"Bearer {tokens['AL']['customs']}"}).get_data(as_text=True)
    saved = tmp_path / "answer.json"
    saved.write_text(answer)
    browser_tab = tab()
    page = browser_tab.page
    browser_tab.open("/evidence?lang=mk")
    page.set_input_files("#file", str(saved))
    with page.expect_navigation():
        page.click("form.evidence-form button[type=submit]")
    assert browser_tab.text("#result-title") == translated(app, "mk", "A genuine verification answer")
    assert "decl-42" in browser_tab.text("dl.facts")
    audit(browser_tab)
    browser_tab.shot("evidence-answer-mk")

    tampered = json.loads(answer)
    tampered["verification"]["results"][0]["recognised"] = False
    page.fill("#document", json.dumps(tampered))
    with page.expect_navigation():
        page.click("form.evidence-form button[type=submit]")
    assert browser_tab.text(".problem h2") == translated(app, "mk", "This document proves nothing")
    assert page.get_attribute("#document", "aria-invalid") == "true"
    audit(browser_tab)
    browser_tab.shot("evidence-tampered-mk")


def test_language_switcher_choice_is_remembered(tab, app):
    browser_tab = tab("sq-AL")
    page = browser_tab.page
    browser_tab.open("/")
    assert page.get_attribute("html", "lang") == "sq"
    with page.expect_navigation():
        page.click("nav.languages a[hreflang='sr-Latn']")
    assert page.get_attribute("html", "lang") == "sr-Latn"
    browser_tab.open("/check")
    assert page.get_attribute("html", "lang") == "sr-Latn"
    assert browser_tab.text("h1") == translated(app, "sr", "Check a licence")
