"""Every error becomes RFC 9457 problem details, in this one place.

Use cases raise ``registry.errors``; werkzeug's HTTP errors and webargs'
validation errors are translated here too. Nothing reaches a client as HTML
or as a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, json
from werkzeug.exceptions import HTTPException

from ..errors import RegistryError, flatten

PROBLEM_TYPE = "urn:aeo-registry:problem:"
PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str, *, slug: str | None = None,
            errors: Mapping[str, list[str]] | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = dict(errors)
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def _registry_error(error: RegistryError) -> Response:
    if error.status >= 500:
        log.error("%s: %s", error.title, error.detail)
    return problem(error.status, error.title, error.detail, slug=error.slug,
                   errors=error.errors, headers=error.headers)


def _webargs_messages(error: HTTPException) -> dict[str, list[str]] | None:
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if not messages:
        return None
    # webargs nests by location ("json", "query", "view_args"); the field path
    # is what a client can act on.
    merged: dict[str, list[str]] = {}
    for location_messages in messages.values():
        for path, texts in flatten(location_messages).items():
            merged.setdefault(path, []).extend(texts)
    return merged


def _http_error(error: HTTPException) -> Response:
    errors = _webargs_messages(error)
    if errors is not None:
        names = ", ".join(sorted(errors))
        return problem(400, "Invalid input", f"invalid fields: {names}", slug="invalid-input", errors=errors)
    status = error.code or 500
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return problem(413, "Payload too large", f"request bodies are limited to {limit} bytes",
                       slug="payload-too-large")
    headers = {}
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return problem(status, error.name, error.description or error.name, headers=headers)


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    detail = f"{type(error).__name__}: {error}" if current_app.debug else "an unexpected error occurred"
    return problem(500, "Internal error", detail, slug="internal-error")


def register(app: Flask) -> None:
    app.register_error_handler(RegistryError, _registry_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
