"""The key rules on the pure functions alone: what a back-dated revocation voids, and what it may not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain.party_keys import NEVER, KeyLedger, KeyStatement, replay, voids_its_signer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = "registry-answer-key"


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def add(index: int, kid: str, signer: str = REGISTRY) -> KeyStatement:
    return KeyStatement(index, at(index), "RS", signer, "add", kid)


def revoke(index: int, kid: str, signer: str, since: int) -> KeyStatement:
    return KeyStatement(index, at(index), "RS", signer, "revoke", kid, revoked_at=at(since))


def retire(index: int, kid: str, signer: str) -> KeyStatement:
    return KeyStatement(index, at(index), "RS", signer, "retire", kid)


def test_a_revocation_dated_back_voids_the_keys_later_statements_only():
    history = replay([add(0, "k1"), add(1, "k2"), retire(3, "k2", "k1"), revoke(5, "k1", "k2", since=2)])
    assert history.void == {3}  # the retirement, signed by k1 after its compromise
    assert history.keys["k2"].status == "active"  # so k2 is not retired
    assert history.keys["k1"].status == "revoked"
    assert history.void_from == {"k1": at(2)}
    assert history.is_void("k1", at(3)) and not history.is_void("k1", at(2))


def test_keys_enrolled_by_a_void_statement_are_void_whatever_they_signed():
    history = replay([add(0, "k1"), add(3, "thief", signer="k1"), add(4, "thief2", signer="thief"),
                      add(6, "fresh"), revoke(7, "k1", "fresh", since=2)])
    assert history.void == {3, 4}
    assert history.keys["thief"].status == "void" and history.keys["thief2"].status == "void"
    assert history.void_from["thief"] == NEVER == history.void_from["thief2"]
    assert history.refusal("thief", "RS", 10, at(10)) is not None


def test_a_revocation_that_voids_its_own_signer_counts_for_nothing_and_is_refused():
    statements = [add(0, "k1"), add(3, "k2", signer="k1")]
    attempt = revoke(5, "k1", "k2", since=2)
    history = replay([*statements, attempt])
    assert voids_its_signer(history, attempt)
    assert history.keys["k1"].status == "active"  # it took no effect
    # A key revoking itself from now on voids nothing of its own.
    honest = revoke(5, "k1", "k1", since=5)
    assert not voids_its_signer(replay([*statements, honest]), honest)


def test_a_newer_revocation_undoes_a_thiefs_revocation():
    history = replay([add(0, "k1"), add(1, "k3"), revoke(4, "k3", "k1", since=1),  # the thief revokes k3
                      add(6, "fresh"), revoke(7, "k1", "fresh", since=3)])
    assert 2 not in history.void and history.void == {4}
    assert history.keys["k3"].status == "active"
    assert "k3" not in history.void_from


def test_the_ledger_judges_a_statement_by_the_keys_of_its_time():
    ledger = KeyLedger([add(0, "k1"), retire(5, "k1", "k1"), add(6, "k2")])
    assert ledger.before(3).refusal("k1", "RS", 3, at(3)) is None
    assert ledger.before(7).refusal("k1", "RS", 7, at(7)) == "key k1 was retired"
    assert ledger.final.refusal("k2", "AL", 8, at(8)).endswith("not a key of AL")


@st.composite
def key_logs(draw):
    """Random key histories of one party, as the registry accepts them: each statement by a key that may
    sign when it is logged, no revocation that voids its own signer, no key revoked twice."""
    statements: list[KeyStatement] = []
    for index in range(draw(st.integers(1, 14))):
        history = replay(statements)
        usable = [kid for kid in history.keys if history.refusal(kid, "RS", index, at(index)) is None]
        live = [kid for kid, v in history.keys.items() if v.status in ("active", "retired")]
        action = draw(st.sampled_from(["add", "add", "retire", "revoke"])) if usable and live else "add"
        signer = draw(st.sampled_from([REGISTRY, *usable])) if action == "add" else draw(st.sampled_from(usable))
        if action == "add":
            candidate = add(index, f"k{index}", signer)
        elif action == "retire":
            candidate = retire(index, draw(st.sampled_from(live)), signer)
        else:
            target = draw(st.sampled_from(live))
            since = draw(st.integers(history.keys[target].added_index, index))
            candidate = revoke(index, target, signer, since=since)
            if voids_its_signer(replay([*statements, candidate]), candidate):
                continue  # refused with 409
        statements.append(candidate)
    return statements


@settings(max_examples=300, deadline=None)
@given(key_logs())
def test_what_replay_finds_void_is_what_the_rules_say(statements):
    history = replay(statements)
    assert history == replay(list(reversed(statements)))  # a function of the statements, not their order
    for statement in statements:
        void = statement.index in history.void
        if statement.signer == REGISTRY:
            assert not void  # the administrator's enrolments are never void
        else:
            # Void exactly when signed by a key that is void, or revoked, since before it was logged.
            assert void == history.is_void(statement.signer, statement.logged_at)
        if statement.action == "add":
            assert history.keys[statement.kid].void == void
