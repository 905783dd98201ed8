"""Bearer tokens, roles and the party a caller acts for.

Every view is marked ``public`` or ``require(role, ...)``; the access-matrix
test reads these marks from the route table, so a view without one fails it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import g, request
from flask_smorest import Blueprint

from ..errors import ForbiddenError, RateLimitedError, UnauthorizedError
from ..runtime.limits import client_key
from ..services import tokens
from ..services.tokens import Caller
from . import context

BEARER_SCHEME = {"type": "http", "scheme": "bearer", "description": "a token from `registry token issue`"}


@dataclass(frozen=True)
class Access:
    roles: tuple[str, ...]  # empty: public
    party_bound: bool = False  # the path names a party the caller must belong to

    @property
    def public(self) -> bool:
        return not self.roles


def client() -> str:
    """The key this request's client is counted under by the rate limits (see ratelimit.client_key)."""
    return client_key(request.remote_addr)


def public_check_wait() -> int | None:
    """Count one trader self-check (API or page) for this client; seconds to wait if it is over the limit."""
    return context.runtime().public_checks.hit(client())


def problem_ref(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def authenticate() -> Caller:
    """The caller of the request's token; a valid token always gets through.

    Only failures are counted, per client and per token prefix; a failure
    while either is over REGISTRY_AUTH_FAILURE_RATE is a 429 instead of a
    401. Refusing valid tokens too (as before) let 40 bad tokens from one
    address, or from a proxy that many partners share, lock everyone there out.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    caller = context.lookups().caller(token) if scheme.lower() == "bearer" and token else None
    if caller is not None:
        return caller
    failures = context.runtime().auth_failures
    # Per token prefix (as stored and listed) too: guesses at one token from
    # many addresses, or through a proxy that passes none on, count together.
    waits = [failures.hit(key) for key in (f"client:{client()}", f"token:{token[:tokens.PREFIX_CHARS]}")
             if key != "token:"]
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        raise RateLimitedError("too many failed authentications from this client or with this token; "
                               "a valid token is still accepted", wait)
    raise UnauthorizedError("a valid bearer token is required" if header else "no bearer token given")


def current_caller() -> Caller:
    return g.caller


def require(*roles: str, party_bound: bool = False) -> Callable:
    """The view needs a token of one of ``roles``."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            caller = authenticate()
            if caller.role not in roles:
                raise ForbiddenError(f"a {caller.role} token cannot do this; it needs {' or '.join(roles)}")
            g.caller = caller
            return view(*args, **kwargs)

        wrapper.access = Access(tuple(roles), party_bound)
        return Blueprint.doc(
            security=[{"bearerAuth": []}],
            responses={
                "401": problem_ref("no token, or an unknown or revoked one"),
                "403": problem_ref("the token's role or party may not do this"),
            },
        )(wrapper)

    return decorator


def public(view: Callable) -> Callable:
    view.access = Access(())
    return view
