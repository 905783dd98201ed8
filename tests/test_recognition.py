"""The recognition rules, table-driven, on the pure function alone."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain.agreement import AgreementVersion, Direction, expand_directions, version_at
from registry.domain.licence import LicenceVersion, effective_type, type_covered
from registry.domain.licence import facts as licence_facts
from registry.domain.recognition import REASONS, recognise

from .test_canonical import licence_payloads

OP = "MK4030000375897"
PARTIES = frozenset({"AL", "MK", "RS", "MD"})


def answer(*args, **kwargs):
    """``recognise`` with the parties of these tests, whose identifiers only they may claim."""
    return recognise(*args, parties=PARTIES, **kwargs)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text else datetime.fromisoformat(
        text + "T00:00:00+00:00")


def lv(version=1, *, status="active", type="AEOF", scope=None, party="MK", certificate="MKAEOF1",
       valid_from="2024-03-01", valid_until="2027-02-28", effective="2024-03-01", partners=True,
       operator=OP, aliases=(), log_index=None, kid="k-mk", logged=None) -> LicenceVersion:
    return LicenceVersion(
        certificate=certificate, party=party, version=version, type=type, status=status, suspended_scope=scope,
        valid_from=t(valid_from).date(), valid_until=t(valid_until).date() if valid_until else None,
        effective_at=t(effective), consent_partners=partners, consent_public=False, operator_id=operator,
        operator_name="Vardar Logistics DOOEL", identifiers=frozenset({operator, *aliases}),
        log_index=log_index if log_index is not None else version, logged_at=t(logged or effective), kid=kid,
    )


def ag(id="CEFTA-AP5", *, version=1, status="in_force", since="2021-01-01", until=None,
       directions=(("AL", "MK", ("AEOS", "AEOF")), ("MK", "AL", ("AEOS", "AEOF"))),
       benefits=("fewer_controls", "priority"), effective="2021-01-01") -> AgreementVersion:
    return AgreementVersion(
        id=id, version=version, title=id, status=status, in_force_from=t(since).date(),
        in_force_until=t(until).date() if until else None,
        recognition=tuple(Direction(v, i, tuple(types)) for v, i, types in directions),
        benefits=tuple(benefits), effective_at=t(effective), log_index=100 + version,
    )


AP5 = ag()
RS_MK = ag("RS-MK", directions=(("RS", "MK", ("AEOC", "AEOS", "AEOF")), ("MK", "RS", ("AEOC", "AEOS", "AEOF"))),
           benefits=("fewer_controls", "priority", "green_lane"))

CASES = [
    # (name, verifier, at, licence versions, agreements, reason, basis, agreement)
    ("national basis", "MK", "2026-11-27", [lv()], [], "recognised", "national", None),
    ("partner by agreement", "AL", "2026-11-27", [lv()], [AP5], "recognised", "agreement", "CEFTA-AP5"),
    ("unknown operator", "AL", "2026-11-27", [], [AP5], "unknown_operator", None, None),
    ("alias finds the operator", "AL", "2026-11-27", [lv(operator="MK5393363387500", aliases=(OP,))], [AP5],
     "recognised", "agreement", "CEFTA-AP5"),
    ("first day of validity is inclusive", "AL", "2024-03-01", [lv()], [AP5], "recognised", "agreement", "CEFTA-AP5"),
    ("day before validity", "AL", "2024-02-29T23:59:59Z", [lv(effective="2024-01-01")], [AP5], "not_yet_valid",
     None, None),
    ("last day of validity is inclusive", "AL", "2027-02-28T23:59:59Z", [lv()], [AP5], "recognised", "agreement",
     "CEFTA-AP5"),
    ("day after validity", "AL", "2027-03-01", [lv()], [AP5], "expired", None, None),
    ("no end of validity", "AL", "2040-01-01", [lv(valid_until=None)], [AP5], "recognised", "agreement",
     "CEFTA-AP5"),
    ("before the first version took effect", "AL", "2024-02-01", [lv(effective="2024-03-01")], [AP5],
     "not_yet_valid", None, None),
    ("suspended", "AL", "2026-11-27", [lv(), lv(2, status="suspended", effective="2025-01-01")], [AP5],
     "suspended", None, None),
    ("suspended is suspended nationally too", "MK", "2026-11-27",
     [lv(), lv(2, status="suspended", effective="2025-01-01")], [], "suspended", None, None),
    ("revoked", "AL", "2026-11-27", [lv(), lv(2, status="revoked", effective="2025-01-01")], [AP5], "revoked",
     None, None),
    ("revocation is not retroactive", "AL", "2024-06-01", [lv(), lv(2, status="revoked", effective="2025-01-01")],
     [AP5], "recognised", "agreement", "CEFTA-AP5"),
    ("annulment is retroactive", "AL", "2024-06-01", [lv(), lv(2, status="annulled", effective="2025-01-01")],
     [AP5], "annulled", None, None),
    ("annulment is retroactive nationally", "MK", "2024-06-01",
     [lv(), lv(2, status="annulled", effective="2025-01-01")], [], "annulled", None, None),
    ("no agreement between the parties", "BA", "2026-11-27", [lv()], [AP5], "no_agreement", None, None),
    ("agreement not yet in force", "AL", "2020-06-01", [lv(valid_from="2020-01-01", effective="2020-01-01")],
     [AP5], "no_agreement", None, None),
    ("agreement ended", "AL", "2026-11-27", [lv()], [ag(until="2025-12-31")], "no_agreement", None, None),
    ("agreement's last day is inclusive", "AL", "2025-12-31T12:00:00Z", [lv()], [ag(until="2025-12-31")],
     "recognised", "agreement", "CEFTA-AP5"),
    ("suspended agreement recognises nothing", "AL", "2026-11-27", [lv()], [ag(status="suspended")],
     "no_agreement", None, None),
    ("terminated agreement recognises nothing", "AL", "2026-11-27", [lv()], [ag(status="terminated")],
     "no_agreement", None, None),
    ("one direction only", "AL", "2026-11-27", [lv()], [ag(directions=(("MK", "AL", ("AEOS", "AEOF")),))],
     "no_agreement", None, None),
    ("type not covered", "AL", "2026-11-27", [lv(type="AEOC")], [AP5], "type_not_covered", None, None),
    ("AEOC covered by the bilateral", "RS", "2026-11-27", [lv(type="AEOC")], [AP5, RS_MK], "recognised",
     "agreement", "RS-MK"),
    ("AEOF suspended in AEOC counts as AEOS", "AL", "2026-11-27",
     [lv(), lv(2, status="suspended", scope="AEOC", effective="2025-01-01")], [AP5], "recognised", "agreement",
     "CEFTA-AP5"),
    ("AEOF suspended in AEOS counts as AEOC", "AL", "2026-11-27",
     [lv(), lv(2, status="suspended", scope="AEOS", effective="2025-01-01")], [AP5], "type_not_covered", None,
     None),
    ("AEOF suspended in AEOS still recognised where AEOC is covered", "RS", "2026-11-27",
     [lv(), lv(2, status="suspended", scope="AEOS", effective="2025-01-01")], [AP5, RS_MK], "recognised",
     "agreement", "RS-MK"),
    ("partial suspension nationally", "MK", "2026-11-27",
     [lv(), lv(2, status="suspended", scope="AEOS", effective="2025-01-01")], [], "recognised", "national", None),
    ("AEOF recognised where only AEOS is listed", "AL", "2026-11-27", [lv()],
     [ag(directions=(("AL", "MK", ("AEOS",)),))], "recognised", "agreement", "CEFTA-AP5"),
    ("no partner consent", "AL", "2026-11-27", [lv(partners=False)], [AP5], "no_consent", None, None),
    ("consent withdrawn later also hides the past", "AL", "2024-06-01",
     [lv(), lv(2, partners=False, effective="2025-01-01")], [AP5], "no_consent", None, None),
    ("no consent needed nationally", "MK", "2026-11-27", [lv(partners=False)], [], "recognised", "national", None),
    ("the agreement with more benefits wins", "RS", "2026-11-27", [lv()], [AP5, RS_MK,
     ag("AP5-RS", directions=(("RS", "MK", ("AEOF",)),), benefits=("priority",))], "recognised", "agreement",
     "RS-MK"),
]


@pytest.mark.parametrize(("name", "verifier", "at", "versions", "agreements", "reason", "basis", "agreement"),
                         CASES, ids=[c[0] for c in CASES])
def test_rule(name, verifier, at, versions, agreements, reason, basis, agreement):
    result = answer(OP, verifier, t(at), versions, agreements)
    assert result.reason == reason
    assert result.recognised is (reason == "recognised")
    if basis:
        assert result.recognition.basis == basis
        assert result.recognition.agreement == agreement
    else:
        assert result.recognition is None


def test_every_reason_is_covered_by_a_case():
    assert {c[5] for c in CASES} == set(REASONS)


SUSPENSION = [
    lv(1, effective="2024-03-01"),
    lv(2, status="suspended", effective="2025-05-01T08:00:00Z"),
    lv(3, status="active", effective="2025-06-15T12:00:00Z"),
]


@pytest.mark.parametrize(("at", "reason", "version"), [
    ("2025-04-30T23:59:59Z", "recognised", 1),
    ("2025-05-01T07:59:59Z", "recognised", 1),
    ("2025-05-01T08:00:00Z", "suspended", 2),
    ("2025-06-01", "suspended", 2),
    ("2025-06-15T11:59:59Z", "suspended", 2),
    ("2025-06-15T12:00:00Z", "recognised", 3),
    ("2026-11-27", "recognised", 3),
])
def test_suspended_then_reinstated(at, reason, version):
    result = answer(OP, "AL", t(at), SUSPENSION, [AP5])
    assert result.reason == reason
    assert [v.version for v in result.licences] == [version]


def test_nearest_miss_among_several_licences():
    expired = lv(certificate="MKAEOF1", valid_until="2025-01-01")
    aeoc = lv(certificate="MKAEOC2", type="AEOC", log_index=10)
    revoked = [lv(certificate="MKAEOS3", type="AEOS", log_index=20),
               lv(2, certificate="MKAEOS3", type="AEOS", status="revoked", effective="2025-02-01", log_index=21)]
    result = answer(OP, "AL", t("2026-11-27"), [expired, aeoc, *revoked], [AP5])
    assert result.reason == "type_not_covered"
    assert [v.certificate for v in result.licences] == ["MKAEOC2", "MKAEOF1", "MKAEOS3"]
    assert result.operator.certificate == "MKAEOC2"


def test_one_recognised_licence_is_enough():
    result = answer(OP, "AL", t("2026-11-27"),
                       [lv(certificate="MKAEOC2", type="AEOC"), lv(certificate="MKAEOS3", type="AEOS")], [AP5])
    assert result.reason == "recognised"
    assert result.operator.certificate == "MKAEOS3"


def test_no_consent_discloses_nothing_but_other_licences_may_show():
    hidden = lv(certificate="MKAEOF1", partners=False)
    result = answer(OP, "AL", t("2026-11-27"), [hidden], [AP5])
    assert result.as_json()["operator"] is None
    assert result.as_json()["licences"] == []
    shown = lv(certificate="MKAEOC2", type="AEOC", log_index=9)
    result = answer(OP, "AL", t("2026-11-27"), [hidden, shown], [AP5])
    assert result.reason == "type_not_covered"
    assert [v.certificate for v in result.licences] == ["MKAEOC2"]


def test_licences_of_other_operators_are_ignored():
    other = lv(operator="MK5393363387500", certificate="MKAEOF9")
    assert answer(OP, "AL", t("2026-11-27"), [other], [AP5]).reason == "unknown_operator"


def test_statements_logged_after_their_keys_revocation_do_not_count():
    versions = [lv(1, logged="2024-03-01"), lv(2, status="revoked", effective="2025-01-01", kid="stolen",
                                              logged="2025-01-02")]
    assert answer(OP, "AL", t("2026-11-27"), versions, [AP5]).reason == "revoked"
    revoked = {"stolen": t("2024-12-31")}
    assert answer(OP, "AL", t("2026-11-27"), versions, [AP5], revoked).reason == "recognised"


def test_agreement_version_in_effect():
    first = ag(version=1, effective="2026-01-01")
    suspended = ag(version=2, status="suspended", effective="2026-06-01")
    assert version_at([first, suspended], t("2025-01-01")) is first  # before any version: the first describes it
    assert version_at([first, suspended], t("2026-05-31")) is first
    assert version_at([first, suspended], t("2026-06-01")) is suspended
    versions = [lv(effective="2024-01-01", valid_from="2024-01-01")]
    assert answer(OP, "AL", t("2026-03-01"), versions, [first, suspended]).reason == "recognised"
    assert answer(OP, "AL", t("2026-07-01"), versions, [first, suspended]).reason == "no_agreement"


def test_expand_directions():
    directions = expand_directions([{"verifier": "AL", "issuer": "MK", "types": ["AEOC"]}],
                                   {"parties": ["AL", "MK", "RS"], "types": ["AEOF", "AEOS"]})
    assert len(directions) == 6
    assert {"verifier": "AL", "issuer": "MK", "types": ["AEOC", "AEOS", "AEOF"]} in directions
    assert {"verifier": "RS", "issuer": "AL", "types": ["AEOS", "AEOF"]} in directions


@pytest.mark.parametrize(("licence_type", "scope", "expected"), [
    ("AEOF", None, "AEOF"), ("AEOF", "AEOC", "AEOS"), ("AEOF", "AEOS", "AEOC"), ("AEOC", None, "AEOC")])
def test_effective_type(licence_type, scope, expected):
    assert effective_type(licence_type, scope) == expected


def test_type_coverage():
    assert type_covered("AEOF", ("AEOS", "AEOF"))
    assert type_covered("AEOF", ("AEOS",))
    assert not type_covered("AEOC", ("AEOS", "AEOF"))
    assert not type_covered("AEOS", ("AEOC",))


@settings(max_examples=200, deadline=None)
@given(licence_payloads(), st.booleans(), st.sampled_from([datetime(2026, 11, 27, 10, tzinfo=UTC),
                                                           datetime(2026, 11, 27, 10, 0, 0, 250, tzinfo=UTC)]))
def test_a_version_read_from_its_facts_is_the_version_read_from_its_statement(payload, keep_effective_at, logged_at):
    # Verification reads licence_version.facts, never the statement: both must give the same version.
    if not keep_effective_at:
        del payload["effective_at"]
    payload["operator"]["aliases"] = payload["operator"]["aliases"] or None
    kept = json.loads(json.dumps(licence_facts(payload, logged_at=logged_at, kid="k1")))  # stored as JSON
    assert "address" not in kept["operator"] and "reason" not in kept
    read = LicenceVersion.from_facts(kept, log_index=5, statement="s")
    assert read == LicenceVersion.from_payload(payload, log_index=5, logged_at=logged_at, kid="k1", statement="s")
    assert dataclasses.replace(read) == read  # made past __init__, it holds what __init__ would make
