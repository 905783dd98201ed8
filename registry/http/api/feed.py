"""The change feed and offline snapshots, for partners (roles customs and authority)."""

from flask import current_app

from ... import clock
from ...services import feed, witnesses
from .. import context
from ..auth import current_caller, require
from ..schemas import FeedQuerySchema, FeedSchema, SnapshotQuerySchema, SnapshotSchema
from .base import API_PREFIX, Blueprint, keyring

blp = Blueprint("feed", __name__, url_prefix=API_PREFIX,
                description="Changes as they happen, and signed snapshots for offline use")


@blp.route("/feed")
@require("customs", "authority")
@blp.arguments(FeedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, FeedSchema)
def change_feed(after, limit):
    """Log entries after index ``after``, with statements where the caller may see them."""
    return feed.feed(context.session(), current_caller().party, after, limit)


@blp.route("/snapshot")
@require("customs", "authority")
@blp.arguments(SnapshotQuerySchema, location="query", as_kwargs=True)
@blp.response(200, SnapshotSchema)
def snapshot(party=None, cosigned=None):
    """A signed snapshot for verifying without a connection (see `registry verify-offline`).

    With ``cosigned=K``: as of the newest checkpoint that at least K of the registry's witnesses cosigned.
    """
    session = context.session()
    size = None
    if cosigned is not None:
        size = witnesses.newest_cosigned(session, cosigned,
                                         current_app.config["REGISTRY"].witness_interval_seconds)
    return feed.snapshot(session, keyring(), current_caller().party, party, clock.now(), size)
