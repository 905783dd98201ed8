"""Signed notes and checkpoints against the Go sumdb/note vector."""

import json
from pathlib import Path

import pytest

from registry.crypto import keys, note

VECTOR = json.loads((Path(__file__).parent / "testdata" / "signed-note.json").read_text())


def test_signer_reproduces_vector_byte_for_byte():
    signer = note.Signer.from_skey(VECTOR["signer_key"])
    assert note.sign(VECTOR["text"], signer) == VECTOR["signed_note"]
    assert signer.verifier.vkey() == VECTOR["verifier_key"]


def test_verifier_key_verifies_vector():
    verifier = note.Verifier.from_vkey(VECTOR["verifier_key"])
    text, verified = note.open_note(VECTOR["signed_note"], [verifier])
    assert text == VECTOR["text"]
    assert verified == [verifier]


def test_unknown_signatures_are_skipped_and_known_ones_checked():
    verifier = note.Verifier.from_vkey(VECTOR["verifier_key"])
    other = note.Verifier.from_vkey(VECTOR["other_verifier_key"])
    both = VECTOR["signed_note"] + VECTOR["other_signature_line"]
    _, verified = note.open_note(both, [verifier])
    assert verified == [verifier]
    _, verified = note.open_note(both, [verifier, other])
    assert {v.name for v in verified} == {"PeterNeumann", "EnochRoot"}
    with pytest.raises(note.NoteError, match="no signature by a known key"):
        note.open_note(VECTOR["signed_note"], [other])


def test_tampered_note_fails():
    verifier = note.Verifier.from_vkey(VECTOR["verifier_key"])
    tampered = VECTOR["signed_note"].replace("cryptography", "cryptographY", 1)
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_note(tampered, [verifier])


def test_malformed_keys_are_refused():
    with pytest.raises(note.NoteError):
        note.Verifier.from_vkey(VECTOR["verifier_key"].replace("c74f20a3", "c74f20a4"))
    with pytest.raises(note.NoteError):
        note.Signer.from_skey("PRIVATE+KEY+x+00000000+AAAA")


def test_checkpoint_round_trip():
    signer = note.Signer("aeo-registry.example/log", keys.generate().private_key)
    checkpoint = note.Checkpoint("aeo-registry.example/log", 42, bytes(range(32)))
    signed = note.sign(checkpoint.text(), signer)
    assert signed.startswith("aeo-registry.example/log\n42\nAAECAwQF")
    assert note.open_checkpoint(signed, signer.verifier, "aeo-registry.example/log") == checkpoint
    with pytest.raises(note.NoteError, match="origin"):
        note.open_checkpoint(signed, signer.verifier, "elsewhere.example/log")
