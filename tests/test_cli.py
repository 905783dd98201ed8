"""The administrator's commands: results on stdout, errors on stderr, non-zero exits."""

import json

import pytest
from cryptography.hazmat.primitives import serialization

from registry.crypto import keys

from .helpers import import_row as _row
from .helpers import licence_fields, licence_payload
from .helpers import write_import_csv as _csv


@pytest.fixture
def cli(runner):
    def run(*args, ok=True):
        result = runner.invoke(args=["registry", *map(str, args)])
        if ok:
            assert result.exit_code == 0, (result.output, result.stderr)
        else:
            assert result.exit_code != 0, result.output
        return result

    return run


def test_init_is_idempotent(cli):
    result = cli("init")
    assert "database ready" in result.stdout
    cli("init")


def test_party_add_and_list(cli, client):
    result = cli("party", "add", "MK", "--name", "North Macedonia", "--authority", "Customs", "--hosted-key")
    assert "with hosted key" in result.stdout
    assert "MK  North Macedonia" in cli("party", "list").stdout
    party = client.get("/api/v1/parties/MK").get_json()
    assert party["keys"][0]["hosted"] is True and party["keys"][0]["status"] == "active"
    again = cli("party", "add", "MK", "--name", "x", "--authority", "y", ok=False)
    assert "exists already" in again.stderr
    bad = cli("party", "add", "mk", "--name", "x", "--authority", "y", ok=False)
    assert "ISO 3166-1" in bad.stderr


def test_hosted_key_file_is_private(cli, keys_dir):
    cli("party", "add", "RS", "--name", "Serbia", "--authority", "Customs", "--hosted-key")
    files = list(keys_dir.glob("party-RS-*.pem"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    assert (keys_dir / "registry-answer.pem").stat().st_mode & 0o777 == 0o600


def test_key_import_jwk_and_pem(cli, tmp_path, client):
    cli("party", "add", "AL", "--name", "Albania", "--authority", "Customs")
    key = keys.generate()
    jwk_file = tmp_path / "al.jwk"
    jwk_file.write_text(json.dumps(keys.public_jwk(key)))
    assert cli("party", "key-import", "AL", jwk_file).stdout.strip() == key.kid
    other = keys.generate()
    pem_file = tmp_path / "al.pem"
    pem_file.write_bytes(other.public_key.public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    assert cli("party", "key-import", "AL", pem_file).stdout.strip() == other.kid
    kids = [k["kid"] for k in client.get("/api/v1/parties/AL/jwks.json").get_json()["keys"]]
    assert kids == [key.kid, other.kid]
    private = tmp_path / "private.jwk"
    private.write_text(json.dumps(key.as_dict(private=True)))
    assert "private key" in cli("party", "key-import", "AL", private, ok=False).stderr
    assert "enrolled already" in cli("party", "key-import", "AL", jwk_file, ok=False).stderr
    assert "no party" in cli("party", "key-import", "ZZ", jwk_file, ok=False).stderr


def test_token_issue_prints_only_the_token_and_revoke_works(cli, client):
    cli("party", "add", "MK", "--name", "North Macedonia", "--authority", "Customs", "--hosted-key")
    token = cli("token", "issue", "MK", "--role", "authority").stdout
    assert token.count("\n") == 1 and token.startswith("aeo_")
    token = token.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/licences", headers=headers).status_code == 200
    assert "revoked token" in cli("token", "revoke", token).stdout
    assert client.get("/api/v1/licences", headers=headers).status_code == 401
    assert "no such token" in cli("token", "revoke", "aeo_unknown", ok=False).stderr
    assert token not in cli("token", "list").stdout
    assert cli("token", "issue", "ZZ", "--role", "customs", ok=False).exit_code != 0


def test_keygen_sign_and_publish(cli, tmp_path, registry):
    registry.add_party("MK", hosted=False)
    key_file = tmp_path / "mk.pem"
    jwk = json.loads(cli("keygen", key_file).stdout)
    assert key_file.stat().st_mode & 0o777 == 0o600
    jwk_file = tmp_path / "mk.jwk"
    jwk_file.write_text(json.dumps(jwk))
    cli("party", "key-import", "MK", jwk_file)
    payload_file = tmp_path / "licence.json"
    payload_file.write_text(json.dumps(licence_payload("MKAEOF000001", 1)))
    statement = cli("sign", "--key", key_file, payload_file).stdout.strip()
    response = registry.put("MKAEOF000001", {"statement": statement})
    assert response.status_code == 201, response.get_json()
    payload_file.write_text(json.dumps({**licence_payload("MKAEOF000001", 1), "type": "AEOX"}))
    assert "type" in cli("sign", "--key", key_file, payload_file, ok=False).stderr


def test_sign_refuses_a_key_file_others_can_read(cli, tmp_path):
    key_file = tmp_path / "loose.pem"
    cli("keygen", key_file)
    key_file.chmod(0o644)
    payload_file = tmp_path / "licence.json"
    payload_file.write_text(json.dumps(licence_payload("MKAEOF000001", 1)))
    assert "chmod 600" in cli("sign", "--key", key_file, payload_file, ok=False).stderr


def test_import_csv_and_rerun(cli, registry, tmp_path):
    registry.add_party("MK")
    path = _csv(tmp_path / "mk.csv", [_row(n) for n in range(1, 26)])
    result = cli("import", "MK", path)
    assert "25 licence versions published, 0 unchanged" in result.stdout
    again = cli("import", "MK", path)
    assert "0 licence versions published, 25 unchanged" in again.stdout
    path = _csv(tmp_path / "mk2.csv", [_row(1, status="suspended", reason="audit")])
    assert "1 licence versions published" in cli("import", "MK", path).stdout


def test_import_error_names_the_line_and_writes_nothing_of_its_chunk(cli, registry, tmp_path):
    registry.add_party("MK")
    rows = [_row(n) for n in range(1, 6)]
    rows[3]["valid_from"] = "2025-13-01"
    result = cli("import", "MK", _csv(tmp_path / "bad.csv", rows), ok=False)
    assert "line 5: valid_from" in result.stderr
    assert registry.log_size() == 1


def test_import_refuses_unknown_columns(cli, registry, tmp_path):
    registry.add_party("MK")
    path = tmp_path / "cols.csv"
    path.write_text("certificate,colour\nMKAEOS1,blue\n")
    result = cli("import", "MK", path, ok=False)
    assert "columns.colour" in result.stderr and "columns.operator_id" in result.stderr


def test_demo_loads_once_and_audits_clean(cli, tmp_path, client):
    tokens_file = tmp_path / "tokens.json"
    result = cli("demo", "--tokens-file", tokens_file)
    assert "7 parties, 2 agreements" in result.stdout
    tokens = json.loads(tokens_file.read_text())
    assert set(tokens) == {"AL", "BA", "MD", "ME", "MK", "RS", "XK"}
    assert tokens_file.stat().st_mode & 0o777 == 0o600
    headers = {"Authorization": f"Bearer {tokens['RS']['authority']}"}
    listed = client.get("/api/v1/licences", headers=headers).get_json()["items"]
    statuses = {item["licence"]["status"] for item in listed}
    assert {"active", "suspended", "revoked"} <= statuses
    assert "not loaded again" in cli("demo", "--tokens-file", tokens_file).stdout
    assert "all hold" in cli("audit").stdout


def test_errors_go_to_stderr_not_stdout(cli):
    result = cli("token", "revoke", "nope", ok=False)
    assert result.stdout == ""
    assert result.stderr.startswith("Error:")


def test_licence_fields_helper_is_valid(registry):
    registry.add_party("MK")
    assert registry.put("MKAEOF1", licence_fields()).status_code == 201
