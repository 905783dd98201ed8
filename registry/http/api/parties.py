"""Parties, their public keys, and key rotation by the party itself."""


from ... import clock
from ...services import parties
from .. import context
from ..auth import current_caller, problem_ref, public, require
from ..schemas import JwkSetSchema, PartyKeySchema, PartyListSchema, PartySchema, StatementSchema
from .base import API_PREFIX, Blueprint, keyring

blp = Blueprint("parties", __name__, url_prefix=f"{API_PREFIX}/parties",
                description="Customs administrations and their signing keys")


@blp.route("")
@blp.response(200, PartyListSchema)
@public
def list_parties():
    """Every party with its public keys and their validity."""
    return {"items": parties.parties_json(context.session())}


@blp.route("/<code>")
@blp.response(200, PartySchema)
@public
def get_party(code):
    """One party with its public keys and their validity."""
    return parties.parties_json(context.session(), code)[0]


@blp.route("/<code>/jwks.json")
@blp.response(200, JwkSetSchema)
@public
def party_jwks(code):
    """The party's keys as a JWK set, old ones included so old statements stay verifiable."""
    return parties.party_jwks(context.session(), code)


@blp.route("/<code>/keys", methods=["POST"])
@require("authority", party_bound=True)
@blp.doc(responses={"409": problem_ref("the key is enrolled, retired or revoked already, or the revocation would "
                                       "void the key that signs it")})
@blp.arguments(StatementSchema)
@blp.response(201, PartyKeySchema)
def change_key(body, code):
    """Add, retire or revoke one of the party's keys, signed with a current key (typ aeo-party-key+jws)."""
    row = parties.change_key(context.session(), keyring(), current_caller().party, code, body["statement"], clock.now())
    return parties.key_json(row)
