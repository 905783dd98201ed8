"""The errors a use case raises, each with what a client should be told.

Pure Python: the use cases, the CLI and the offline tools raise these; the
HTTP layer (``registry.http.problems``) turns each into RFC 9457 problem
details, and the CLI into one line on stderr.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    title = "Unauthorized"

    def __init__(self, detail: str):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="aeo-registry"'})


class ForbiddenError(RegistryError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFoundError(RegistryError):
    status = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(RegistryError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class NotCosignedError(ConflictError):
    """No checkpoint has the cosignatures asked for yet: the witnesses have not caught up, not a fault."""

    slug = "not-cosigned"
    title = "Not cosigned yet"


class UnprocessableError(RegistryError):
    """Well-formed input that a rule refuses whatever the state (e.g. claiming another party's identifier)."""

    status = 422
    slug = "unprocessable"
    title = "Unprocessable input"


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


