"""Mutual recognition agreements, as the registry signed and logged them."""


from ...services import agreements
from .. import context
from ..auth import public
from ..schemas import AgreementDetailSchema, AgreementListSchema
from .base import API_PREFIX, Blueprint

blp = Blueprint("agreements", __name__, url_prefix=f"{API_PREFIX}/agreements",
                description="Mutual recognition agreements between parties")


@blp.route("")
@blp.response(200, AgreementListSchema)
@public
def list_agreements():
    """Every agreement's current record and signed statement, with its history."""
    return {"items": agreements.listing(context.session())}


@blp.route("/<agreement_id>")
@blp.response(200, AgreementDetailSchema)
@public
def get_agreement(agreement_id):
    """One agreement's current record and signed statement, with its history."""
    return agreements.detail(context.session(), agreement_id)
