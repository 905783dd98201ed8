"""Every error becomes RFC 9457 problem details, in this one place.

Services raise the exceptions below; werkzeug's HTTP errors and webargs'
validation errors are translated here too. Nothing reaches a client as HTML
or as a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, json
from werkzeug.exceptions import HTTPException

PROBLEM_TYPE = "urn:aeo-registry:problem:"
PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)


class RegistryError(Exception):
    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, errors: Mapping[str, list[str]] | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = dict(errors) if errors else None
        self.headers = dict(headers or {})


class InvalidInputError(RegistryError):
    status = 400
    slug = "invalid-input"
    title = "Invalid input"


class SignatureError(InvalidInputError):
    slug = "invalid-signature"
    title = "Invalid signature"


class UnauthorizedError(RegistryError):
    status = 401
    slug = "unauthorized"
    title = "UnauthorizedError"

    def __init__(self, detail: str):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="aeo-registry"'})


class ForbiddenError(RegistryError):
    status = 403
    slug = "forbidden"
    title = "ForbiddenError"


class NotFoundError(RegistryError):
    status = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(RegistryError):
    status = 409
    slug = "conflict"
    title = "ConflictError"


class NotCosignedError(ConflictError):
    """No checkpoint has the cosignatures asked for yet: the witnesses have not caught up, not a fault."""

    slug = "not-cosigned"
    title = "Not cosigned yet"


class UnprocessableError(RegistryError):
    """Well-formed input that a rule refuses whatever the state (e.g. claiming another party's identifier)."""

    status = 422
    slug = "unprocessable"
    title = "Unprocessable input"


class PayloadTooLargeError(RegistryError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class RateLimitedError(RegistryError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class UnavailableError(RegistryError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"


def field_errors(field: str, *messages: str) -> dict[str, list[str]]:
    return {field: list(messages)}


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested error dicts as ``{"a.b.3.c": [...]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            for path, texts in flatten(value, name).items():
                flat.setdefault(path, []).extend(texts)
    elif isinstance(messages, list | tuple) and all(isinstance(m, str) for m in messages):
        flat[prefix or "body"] = list(messages)
    elif isinstance(messages, list | tuple):
        for index, value in enumerate(messages):
            for path, texts in flatten(value, f"{prefix}.{index}" if prefix else str(index)).items():
                flat.setdefault(path, []).extend(texts)
    else:
        flat[prefix or "body"] = [str(messages)]
    return flat


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
