"""cosignature/v1 and the signed-note additions, checked by a verifier written here from the spec.

``spec_verify`` (tests/spec_c2sp.py) is written from c2sp.org/tlog-cosignature
and c2sp.org/signed-note alone and shares no code with registry.crypto: it
parses the line, derives the key ID, rebuilds the signed message and checks
the Ed25519 signature with ``cryptography`` directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from registry.crypto import cosignature, note

from .spec_c2sp import spec_verify

VECTORS = json.loads((Path(__file__).parent / "vectors" / "c2sp.json").read_text())
TEXT = "aeo-registry.test/log\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\n"


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def cosigner():
    return cosignature.Cosigner("witness.example/w1", Ed25519PrivateKey.generate())


def test_cosignature_verifies_with_the_spec_verifier(cosigner):
    line = cosigner.sign(TEXT, 1_700_000_000)
    assert spec_verify(TEXT, line, cosigner.name, _raw(cosigner.key)) == 1_700_000_000


def test_cosignature_covers_the_whole_checkpoint_and_the_time(cosigner):
    with_extension = TEXT + "extension line\n"
    line = cosigner.sign(with_extension, 1_700_000_000)
    spec_verify(with_extension, line, cosigner.name, _raw(cosigner.key))
    with pytest.raises(InvalidSignature):
        spec_verify(TEXT + "extension linE\n", line, cosigner.name, _raw(cosigner.key))
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1  # the last byte of the timestamp
    forged = f"\u2014 {cosigner.name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(InvalidSignature):
        spec_verify(TEXT, forged, cosigner.name, _raw(cosigner.key))


def test_signed_message_is_the_specs_example():
    spec = VECTORS["tlog_cosignature_spec"]
    assert cosignature.signed_message(spec["checkpoint"], spec["timestamp"]).decode() == spec["signed_message"]


def test_the_specs_example_line_reads_as_its_key_id_and_time():
    spec = VECTORS["tlog_cosignature_spec"]
    _, signatures = note.split_note(spec["checkpoint"] + "\n" + spec["cosignature_line"])
    assert f"{signatures[0].key_id:08x}" == spec["cosignature_key_id"]
    assert cosignature.timestamp_of(signatures[0].signature) == spec["timestamp"]


@pytest.mark.parametrize("case", VECTORS["formats_note_cosigv1"]["timestamps"], ids=lambda c: str(c["timestamp"]))
def test_timestamps_read_as_gos_formats_package_reads_them(case):
    signature = base64.b64decode(case["signature"])[4:]
    if case["timestamp"] is None:
        with pytest.raises(note.NoteError):
            cosignature.timestamp_of(signature)
    else:
        assert cosignature.timestamp_of(signature) == case["timestamp"]


@pytest.mark.parametrize("case", VECTORS["formats_note_cosigv1"]["verifier_keys"], ids=lambda c: c["note"])
def test_verifier_keys_as_gos_formats_package_takes_them(case):
    if not case["ok"]:
        with pytest.raises(note.NoteError):
            cosignature.CosignatureVerifier.from_vkey(case["vkey"])
        return
    verifier = cosignature.CosignatureVerifier.from_vkey(case["vkey"])
    name, _, encoded = case["vkey"].split("+", 2)
    public = base64.b64decode(encoded)[1:]
    assert verifier.name == name
    assert verifier.hash == int.from_bytes(hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4], "big")
    encoded = base64.b64encode(bytes([4]) + public).decode()
    assert verifier.vkey() == f"{name}+{verifier.hash:08x}+{encoded}"


def test_vkey_round_trip_and_a_wrong_hash_is_refused(cosigner):
    vkey = cosigner.verifier.vkey()
    assert vkey.startswith("witness.example/w1+") and base64.b64decode(vkey.split("+", 2)[2])[0] == 4
    assert cosignature.CosignatureVerifier.from_vkey(vkey) == cosigner.verifier
    name, key_id, encoded = vkey.split("+", 2)
    with pytest.raises(note.NoteError, match="hash"):
        cosignature.CosignatureVerifier.from_vkey(f"{name}+{int(key_id, 16) ^ 1:08x}+{encoded}")
    with pytest.raises(note.NoteError):  # a witness key is no log key
        note.Verifier.from_vkey(vkey)


def test_verifier_accepts_its_own_and_refuses_others(cosigner):
    signed = note.sign(TEXT, note.Signer("aeo-registry.test/log", Ed25519PrivateKey.generate()))
    cosigned = cosignature.cosign(signed, cosigner, 1_700_000_000)
    text, verified = note.verified_by(cosigned, [cosigner.verifier])
    assert text == TEXT and verified == [cosigner.verifier]
    other = cosignature.Cosigner("witness.example/w1", Ed25519PrivateKey.generate())
    assert note.verified_by(cosigned, [other.verifier])[1] == []  # same name, other key ID: unknown, skipped
    tampered = cosigned.replace("\n42\n", "\n43\n")
    with pytest.raises(note.NoteError, match="does not verify"):
        note.verified_by(tampered, [cosigner.verifier])


def test_a_log_key_and_a_witness_key_of_one_name_and_key_do_not_mix():
    key = Ed25519PrivateKey.generate()
    log_signer = note.Signer("same.example/name", key)
    witness = cosignature.Cosigner("same.example/name", key)
    assert log_signer.verifier.hash != witness.verifier.hash
    signed = note.sign(TEXT, log_signer)
    assert note.verified_by(signed, [witness.verifier])[1] == []


def test_verified_by_reports_which_of_several_signed(cosigner):
    log_signer = note.Signer("aeo-registry.test/log", Ed25519PrivateKey.generate())
    second = cosignature.Cosigner("witness.example/w2", Ed25519PrivateKey.generate())
    absent = cosignature.Cosigner("witness.example/w3", Ed25519PrivateKey.generate())
    signed = note.sign(TEXT, log_signer)
    cosigned = cosignature.cosign(cosignature.cosign(signed, cosigner, 1), second, 2)
    _, verified = note.verified_by(cosigned, [log_signer.verifier, absent.verifier, second.verifier,
                                               cosigner.verifier])
    assert verified == [log_signer.verifier, cosigner.verifier, second.verifier]  # in the note's order
    assert note.open_note(cosigned, [log_signer.verifier])[1] == [log_signer.verifier]


def test_add_signatures_appends_new_lines_once(cosigner):
    signed = note.sign(TEXT, note.Signer("aeo-registry.test/log", Ed25519PrivateKey.generate()))
    line = cosigner.sign(TEXT, 5)
    once = note.add_signatures(signed, line)
    assert once == signed + line
    assert note.add_signatures(once, cosigner.sign(TEXT, 6)) == once  # that key already signed
    with pytest.raises(note.NoteError):
        note.add_signatures(signed, "not a signature line\n")
    with pytest.raises(note.NoteError):
        note.add_signatures(signed, line.replace(cosigner.name, "bad\rname"))


def test_notes_with_control_characters_are_refused():
    signer = note.Signer("aeo-registry.test/log", Ed25519PrivateKey.generate())
    with pytest.raises(note.NoteError, match="control character"):
        note.open_note(note.sign("aeo-registry.test/log\r\n42\n", signer), [signer.verifier])


def test_timestamps_out_of_range_are_refused(cosigner):
    with pytest.raises(note.NoteError):
        cosigner.sign(TEXT, 2**63)
    with pytest.raises(note.NoteError):
        cosigner.sign(TEXT, -1)


def test_a_plain_signer_key_makes_a_cosigner_of_the_same_key():
    # As Go's transparency-dev note package takes a standard Ed25519 skey for a witness.
    vector = json.loads((Path(__file__).parent / "testdata" / "signed-note.json").read_text())
    cosigner = cosignature.Cosigner.from_skey(vector["signer_key"])
    assert cosigner.verifier == cosignature.CosignatureVerifier.from_vkey(vector["verifier_key"])
    assert cosigner.verifier.hash != note.Verifier.from_vkey(vector["verifier_key"]).hash
    line = cosigner.sign(TEXT, 7)
    public = base64.b64decode(vector["verifier_key"].split("+", 2)[2])[1:]
    assert spec_verify(TEXT, line, cosigner.name, public) == 7
