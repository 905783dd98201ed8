"""The administrator's commands: ``flask --app wsgi registry COMMAND``.

Results go to stdout, errors to stderr, and any failure exits non-zero.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from . import clock
from .config import ConfigError
from .crypto import jws, keys
from .crypto.canonical import canonical_json
from .errors import RegistryError
from .keyring import KeyFileError, Keyring
from .runtime import Runtime
from .services import audit as audit_service
from .services import importer, licences, log, parties, tokens
from .store import migrate

registry = AppGroup("registry", help="Administer the AEO registry.")
party_group = AppGroup("party", help="Parties and their keys.")
token_group = AppGroup("token", help="API tokens.")
agreement_group = AppGroup("agreement", help="Mutual recognition agreements.")
witness_group = AppGroup("witness", help="Partners' witnesses that cosign the log's checkpoints.")
for group in (party_group, token_group, agreement_group, witness_group):
    registry.add_command(group)


def _keyring() -> Keyring:
    return Runtime.of(current_app).keyring


def _database():
    return Runtime.of(current_app).database


def handled(command: Callable) -> Callable:
    """Known failures become one line on stderr and exit status 1, never a traceback."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RegistryError as exc:
            details = "".join(f"\n  {field}: {'; '.join(msgs)}" for field, msgs in (exc.errors or {}).items())
            raise click.ClickException(f"{exc.detail}{details}") from exc
        except (ConfigError, KeyFileError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def initialise() -> list[str]:
    """Schema at the newest migration, registry keys present, an empty checkpoint signed."""
    database = _database()
    migrate.upgrade(database.engine)
    created = _keyring().ensure_registry_keys()
    _keyring().check()
    with database.session() as session:
        if log.latest_checkpoint(session) is None:
            with log.writing(session, _keyring().log_signer, clock.now()) as writer:
                log.sign_checkpoint(session, writer.size, _keyring().log_signer, writer.now)
    return created


@registry.command("init")
@handled
def init_command():
    """Bring the database to the newest migration and create missing registry keys."""
    created = initialise()
    for filename in created:
        click.echo(f"created key {_keyring().keys_dir / filename}")
    click.echo(f"database ready at {_database().engine.url.render_as_string(hide_password=True)}")


@party_group.command("add")
@click.argument("code")
@click.option("--name", required=True, help="the party's name, e.g. North Macedonia")
@click.option("--authority", required=True, help="its customs administration")
@click.option("--hosted-key", is_flag=True, help="generate a signing key kept by the registry")
@handled
def party_add(code, name, authority, hosted_key):
    """Enrol a party."""
    with _database().session() as session:
        party, key = parties.add_party(session, _keyring(), code, name, authority, hosted_key=hosted_key,
                                       now=clock.now())
        click.echo(f"party {party.code} added" + (f" with hosted key {key.kid}" if key else ""))


@party_group.command("key-import")
@click.argument("code")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handled
def party_key_import(code, file):
    """Enrol a party's public key (JWK or PEM); prints its KID. Check the fingerprint out of band first."""
    public = keys.public_from_text(file.read_text())
    with _database().session() as session:
        row = parties.enrol_key(session, _keyring(), code, public, now=clock.now())
        click.echo(row.kid)


@party_group.command("list")
@handled
def party_list():
    """Parties and their keys."""
    with _database().session() as session:
        for party in parties.parties_json(session):
            click.echo(f"{party['code']}  {party['name']} ({party['authority']})")
            for key in party["keys"]:
                hosted = " hosted" if key["hosted"] else ""
                click.echo(f"    {key['kid']}  {key['status']}{hosted}")


@token_group.command("issue")
@click.argument("code")
@click.option("--role", required=True, type=click.Choice(tokens.ROLES))
@click.option("--label", help="who holds it, for your records")
@handled
def token_issue(code, role, label):
    """Print a new token, alone, on stdout. It is shown only this once."""
    with _database().session() as session:
        click.echo(tokens.issue(session, code, role, clock.now(), label))


@token_group.command("revoke")
@click.argument("token", metavar="TOKEN|ID|PREFIX")
@handled
def token_revoke(token):
    """Revoke a token: by its text, or by the id or prefix that `token list` shows (unambiguous)."""
    with _database().session() as session:
        row = tokens.revoke(session, token, clock.now())
        click.echo(f"revoked token {row.id} {row.prefix}… of {row.party_code} ({row.role})")


@token_group.command("list")
@handled
def token_list():
    """Tokens by prefix; the tokens themselves are not stored."""
    with _database().session() as session:
        for row in tokens.listing(session):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            click.echo(f"{row.id:>4}  {row.prefix}…  {row.party_code}  {row.role:<9}  {state}  {row.label or ''}")


@agreement_group.command("put")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handled
def agreement_put(file):
    """Write a new version of an agreement from a JSON file (``mutual`` is spelt out)."""
    from .services import agreements

    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise click.ClickException(f"{file} is not valid JSON: {exc}") from exc
    with _database().session() as session:
        entry, added = agreements.put(session, _keyring(), data, clock.now())
    record = entry["agreement"]
    if added:
        click.echo(f"agreement {record['id']} version {record['version']} logged at index {entry['log_index']}")
    else:
        click.echo(f"agreement {record['id']} unchanged at version {record['version']}")


@witness_group.command("add")
@click.argument("name")
@click.argument("url")
@click.argument("vkey")
@handled
def witness_add(name, url, vkey):
    """Submit checkpoints to a witness: a name of your choice, its submission URL and its verifier key.

    Take the verifier key from the witness's operator over a channel you trust
    (it is what `python -m registry.witness keygen` printed): a wrong key makes
    every cosignature count for nothing.
    """
    from .services import witnesses

    with _database().session() as session:
        row = witnesses.add(session, name, url, vkey, clock.now())
        click.echo(f"witness {row.name} added: {row.url} {row.vkey}")


@witness_group.command("list")
@handled
def witness_list():
    """Each witness with its URL, key and how far it has cosigned."""
    from .services import witnesses

    with _database().session() as session:
        rows = {row.name: row for row in witnesses.listing(session)}
        for state in witnesses.status(session):
            row = rows[state.name]
            problem = f"  ({state.problem})" if state.problem else ""
            click.echo(f"{row.name}  {row.url}  {row.vkey}  {state.state}, cosigned size "
                       f"{state.cosigned_size if state.cosigned_size is not None else '-'}{problem}")


@witness_group.command("remove")
@click.argument("name")
@handled
def witness_remove(name):
    """Stop submitting to a witness; the cosignatures it made stay served."""
    from .services import witnesses

    with _database().session() as session:
        row = witnesses.remove(session, name)
        click.echo(f"witness {row.name} removed")


@witness_group.command("submit")
@handled
def witness_submit():
    """Submit the newest checkpoint to every witness that lacks it now (servers do this by themselves)."""
    from .services import witnesses

    settings = current_app.config["REGISTRY"]
    outcomes = witnesses.submit_due(_database().session, witnesses.Timing.of(settings), clock.now)
    for outcome in outcomes:
        size = f" at size {outcome.tree_size}" if outcome.tree_size is not None else ""
        click.echo(f"{outcome.witness}: {outcome.result}{size}" + (f": {outcome.problem}" if outcome.problem else ""))
    if any(outcome.result == "failed" for outcome in outcomes):
        sys.exit(1)


@registry.command("import")
@click.argument("code")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handled
def import_command(code, file):
    """Publish licences from a CSV file with the party's hosted key (columns: see README).

    Prints a line as each chunk commits: the lines it names are acknowledged,
    and survive a crash of the import that follows.
    """
    settings = current_app.config["REGISTRY"]

    def committed(first: int, last: int, summary: importer.Summary) -> None:
        click.echo(f"lines {first} to {last} committed: log size {summary.tree_size}")

    with _database().session() as session, file.open(newline="", encoding="utf-8-sig") as handle:
        summary = importer.import_csv(session, _keyring(), code, csv.DictReader(handle), clock.now,
                                      chunk=settings.publish_batch_max, committed=committed)
    click.echo(f"{summary.published} licence versions published, {summary.unchanged} unchanged; "
               f"log size {summary.tree_size}")


@registry.command("keygen")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@handled
def keygen(file):
    """For an authority: make a signing key in FILE (mode 0600) and print its public JWK."""
    key = keys.generate()
    keys.write_private(file, key)
    click.echo(json.dumps(keys.public_jwk(key)))


@registry.command("sign")
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["licence", "party-key"]), default="licence", show_default=True)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handled
def sign_command(key_file, kind, file):
    """For an authority: print the JWS of a statement in FILE.json, signed offline with its own key."""
    payload = json.loads(file.read_text())
    key = keys.read_private(key_file)
    if kind == "licence":
        from .services import statements

        loaded = statements.load(statements.LicencePayloadSchema(), payload)
        click.echo(jws.sign_bytes(canonical_json(statements.licence_payload_json(loaded)), key, jws.TYP_LICENCE))
    else:
        click.echo(jws.sign(payload, key, jws.TYP_PARTY_KEY))


@registry.command("audit")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="processes checking signatures (default: one per CPU for a log of "
                   f"{audit_service.POOL_FROM_ENTRIES:,} entries or more, else 1)")
@handled
def audit_command(jobs):
    """Check every statement's signature, every leaf, stored hash and checkpoint, and every table answers read."""
    with _database().session() as session:
        report = audit_service.run(session, _keyring(), jobs)
    for fault in report.faults:
        click.echo(f"FAULT {fault}", err=True)
    for void in report.void:
        click.echo(f"VOID {void}")
    void = f"; {len(report.void)} statements void (listed above, not faults)" if report.void else ""
    click.echo(f"{report.entries} entries and {report.checkpoints} checkpoints checked: "
               + ("all hold" if report.ok else f"{len(report.faults)} faults") + void)
    if not report.ok:
        sys.exit(1)


@registry.command("demo")
@click.option("--tokens-file", type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the demo tokens (default instance/demo-tokens.json)")
@handled
def demo_command(tokens_file):
    """Initialise, then add the CEFTA parties, agreements, sample licences and a token per party and role."""
    from .services import demo

    if current_app.config["REGISTRY"].production:
        # Its tokens are live and printed, and its sample parties and licences
        # would stay in the production log for ever.
        raise click.ClickException("demo is refused with REGISTRY_ENV=production: it prints live tokens and "
                                   "logs sample parties and licences that can never be removed")
    initialise()
    tokens_file = tokens_file or Path(current_app.instance_path) / "demo-tokens.json"
    with _database().session() as session:
        result = demo.load(session, _keyring(), clock.now(), tokens_file)
    click.echo(result)


def _registry_jwks() -> dict | None:
    """This registry's own public keys: what the admin CLI trusts when no ``--jwks`` is given."""
    try:
        return _keyring().registry_jwks()
    except KeyFileError:
        return None


def witness_policy(command: Callable) -> Callable:
    """``--witness VKEY`` (repeatable) and ``--quorum K``, as the offline verifier and the monitor take them."""
    command = click.option("--quorum", type=int, help="how many of the --witness keys must have cosigned "
                                                      "(default: all)")(command)
    return click.option("--witness", multiple=True, metavar="VKEY",
                        help="a witness's verifier key to trust (repeatable)")(command)


def _policy_args(witnesses: tuple[str, ...], quorum: int | None) -> list[str]:
    quorum_args = ["--quorum", str(quorum)] if quorum is not None else []
    return [*(arg for vkey in witnesses for arg in ("--witness", vkey)), *quorum_args]


@registry.command("verify-offline")
@click.argument("snapshot", type=click.Path(exists=True, dir_okay=False))
@click.argument("operator_id")
@click.option("--as", "verifier", required=True, help="the verifying party's code")
@click.option("--at", help="RFC 3339 time or YYYY-MM-DD; default now")
@click.option("--jwks", type=click.Path(exists=True, dir_okay=False),
              help="the registry's pinned JWK set (default: this registry's own keys)")
@witness_policy
def verify_offline(snapshot, operator_id, verifier, at, jwks, witness, quorum):
    """Answer a verification from a snapshot file alone; exits non-zero only if the snapshot fails."""
    from . import offline

    args = ["verify", snapshot, operator_id, "--as", verifier, *(["--at", at] if at else []),
            *(["--jwks", jwks] if jwks else []), *_policy_args(witness, quorum)]
    sys.exit(offline.main(args, _registry_jwks()))


@registry.command("check-answer")
@click.argument("answer", type=click.Path(exists=True, dir_okay=False))
@click.option("--snapshot", required=True, type=click.Path(exists=True, dir_okay=False),
              help="for the issuers' keys and the log key")
@click.option("--jwks", type=click.Path(exists=True, dir_okay=False),
              help="the registry's pinned JWK set (default: this registry's own keys)")
@witness_policy
def check_answer(answer, snapshot, jwks, witness, quorum):
    """Check a stored verification answer (signatures and inclusion proofs) or a .tlog-proof file."""
    from . import offline

    sys.exit(offline.main(["check-answer", answer, "--snapshot", snapshot, *(["--jwks", jwks] if jwks else []),
                           *_policy_args(witness, quorum)], _registry_jwks()))


@registry.command("monitor")
@click.argument("url")
@click.option("--state", required=True, type=click.Path(dir_okay=False), help="keeps the last checkpoint seen")
@click.option("--log-key", help="the log's verifier key, pinned (default: trust on first use)")
@click.option("--tiles", is_flag=True, help="read only the checkpoint and the C2SP tiles; URL is their prefix"
                                            " (https://registry.example/api/v1/log); needs --log-key at first")
@witness_policy
def monitor_command(url, state, log_key, tiles, witness, quorum):
    """Check a running registry's new checkpoint against the last one seen; non-zero on any inconsistency."""
    from . import monitor, offline

    try:
        policy = offline.WitnessPolicy.from_vkeys(witness, quorum)
    except offline.OfflineError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(monitor.run_and_report(monitor.fetcher(url, tiles), Path(state), log_key, click.echo, tiles=tiles,
                                    policy=policy))


def init_app(app: Flask) -> None:
    app.cli.add_command(registry)


__all__ = ["init_app", "initialise", "licences", "registry"]
