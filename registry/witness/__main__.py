"""python -m registry.witness: make the witness's key, say which logs it witnesses, serve add-checkpoint.

    python -m registry.witness keygen witness.pem --name witness.customs.example/w1
    python -m registry.witness add-log --state witness.db --origin aeo-registry.example/log \\
        --vkey 'aeo-registry.example/log+1a2b3c4d+AQ...'
    python -m registry.witness serve --state witness.db --key witness.pem --name witness.customs.example/w1
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import sys
from pathlib import Path

from ..crypto import cosignature, keys, merkle, note
from .server import load_witness, serve
from .state import State, StateError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m registry.witness", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    keygen = commands.add_parser("keygen", help="make the witness's private key (mode 0600), print its verifier key")
    keygen.add_argument("key_file", type=Path)
    keygen.add_argument("--name", required=True, help="the witness's name, e.g. witness.customs.example/w1")

    vkey = commands.add_parser("vkey", help="print the verifier key of an existing key file")
    vkey.add_argument("key_file", type=Path)
    vkey.add_argument("--name", required=True)

    add_log = commands.add_parser("add-log", help="witness a log (or trust another key of one)")
    add_log.add_argument("--state", required=True, type=Path, help="the witness's SQLite state file")
    add_log.add_argument("--origin", required=True, help="the log's checkpoint origin line")
    add_log.add_argument("--vkey", required=True, action="append", help="the log's verifier key (repeatable)")
    add_log.add_argument("--size", type=int, default=0, help="a tree size already checked out of band")
    add_log.add_argument("--root", help="the base64 root hash at --size")

    list_logs = commands.add_parser("list-logs", help="print each witnessed log as a JSON line")
    list_logs.add_argument("--state", required=True, type=Path)

    run = commands.add_parser("serve", help="answer POST /add-checkpoint")
    run.add_argument("--state", required=True, type=Path)
    run.add_argument("--key", required=True, type=Path, help="the key file keygen made")
    run.add_argument("--name", required=True)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=7380)

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (note.NoteError, keys.KeyFileError, StateError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _keygen(args) -> int:
    key = keys.generate()
    cosigner = cosignature.Cosigner(args.name, key.private_key)  # refuses a bad name before a file is made
    keys.write_private(args.key_file, key)
    print(cosigner.verifier.vkey())
    return 0


def _vkey(args) -> int:
    print(cosignature.Cosigner(args.name, keys.read_private(args.key_file).private_key).verifier.vkey())
    return 0


def _add_log(args) -> int:
    for vkey in args.vkey:
        note.Verifier.from_vkey(vkey)  # a log signs checkpoints with a plain Ed25519 note key
    if args.size < 0 or (args.size == 0) != (args.root is None):
        raise ValueError("--size and --root go together, for a size above 0")
    root = merkle.EMPTY_ROOT
    if args.root is not None:
        try:
            root = base64.b64decode(args.root, validate=True)
        except binascii.Error as exc:
            raise ValueError("--root is not base64") from exc
        if len(root) != merkle.HASH_SIZE:
            raise ValueError("--root is not a 32-byte hash")
    State(args.state).add_log(args.origin, args.vkey, args.size, root)
    return _list_logs(args)


def _list_logs(args) -> int:
    for known in State(args.state).logs():
        print(json.dumps({"origin": known.origin, "size": known.tree_size,
                          "root_hash": base64.b64encode(known.root_hash).decode(), "keys": list(known.keys),
                          "cosigned_at": known.cosigned_at}))
    return 0


def _serve(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    witness = load_witness(args.state, args.key, args.name)
    serve(witness, args.host, args.port, echo=lambda line: print(line, flush=True))
    return 0


COMMANDS = {"keygen": _keygen, "vkey": _vkey, "add-log": _add_log, "list-logs": _list_logs, "serve": _serve}

if __name__ == "__main__":
    sys.exit(main())
