"""Security headers on every response, and CORS on public read endpoints only.

One ``after_request`` hook, so that no view can forget them. What a view may
do is read from its ``access`` mark (registry.auth): public GET endpoints get
``Access-Control-Allow-Origin`` (REGISTRY_CORS_ORIGIN) and answer CORS
preflights; token-protected ones never do, and their responses are not stored
by caches (``Cache-Control: no-store``, as are 404s and 405s, unless the view chose ``private``
caching itself, as verification answers do until ``next_update``).

Content-Security-Policy: JSON and text get ``default-src 'none'``. HTML pages
(``/docs`` now, server-rendered pages later) get a policy that allows the
registry's own styles, scripts, images and fonts, ``data:`` images, fetches to
itself, and inline scripts only with this response's nonce: a template writes
``<script nonce="{{ csp_nonce() }}">``. Nothing is loaded from other origins,
and no page may be framed.
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, current_app, g, request

from .auth import Access

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HTML_POLICY = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CORS_METHODS = "GET, HEAD, OPTIONS"
CORS_HEADERS = "Accept, Accept-Language, Content-Type, If-None-Match, If-Modified-Since"
CORS_MAX_AGE = "86400"
HSTS = "max-age=31536000"


def csp_nonce() -> str:
    """This response's nonce for inline scripts in HTML templates."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def access_of_request() -> Access | None:
    """The access mark of the view this request was routed to, if any."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    return getattr(view, "access", None)


def _policy(response: Response) -> str:
    if response.mimetype == "text/html" and request.method != "OPTIONS":
        return HTML_POLICY.format(nonce=csp_nonce())
    return JSON_POLICY


def _cors(response: Response, access: Access | None) -> None:
    if access is None or not access.public or request.method not in ("GET", "HEAD", "OPTIONS"):
        return
    response.headers["Access-Control-Allow-Origin"] = current_app.config["REGISTRY"].cors_origin
    response.vary.add("Origin")
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
        # Public reads need no credentials: Authorization is deliberately not allowed.
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS


def add_headers(response: Response) -> Response:
    headers = response.headers
    # The names present, read once: a look-up of a missing name in werkzeug's
    # Headers walks the list and raises an exception inside, and this hook
    # ran five of those per response.
    present = {name.lower() for name, _ in headers}
    headers.extend([item for item in ALWAYS.items() if item[0].lower() not in present])
    headers["Content-Security-Policy"] = _policy(response)
    if request.is_secure and "strict-transport-security" not in present:
        headers["Strict-Transport-Security"] = HSTS
    access = access_of_request()
    if access is not None and access.public:
        _cors(response, access)
    elif "cache-control" not in present or "private" not in headers["Cache-Control"]:
        # Token-protected, or no route at all (404, 405): nothing for a cache to keep.
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
