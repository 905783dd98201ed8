"""The witness over HTTP: one WSGI route, POST /add-checkpoint, served threaded with keep-alive.

``serve`` runs werkzeug's threaded HTTP/1.1 server, which suits a witness's
load (one request per checkpoint of each log). Behind gunicorn instead, for
more workers or processes, point it at ``app_from_environ()`` with
REGISTRY_WITNESS_STATE, REGISTRY_WITNESS_KEY and REGISTRY_WITNESS_NAME set;
processes share the state file safely (see state.py). Put TLS in front
either way (a reverse proxy).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from ..crypto import cosignature, keys
from .state import State
from .witness import MAX_BODY, TEXT_TYPE, Refusal, Witness

PAUSE_VARIABLE = "REGISTRY_WITNESS_TEST_PAUSE"
log = logging.getLogger("registry.witness")


def make_app(witness: Witness) -> Callable:
    """The WSGI application of ``witness``."""

    @Request.application
    def app(request: Request) -> Response:
        if request.path != "/add-checkpoint":
            return Response("not found\n", 404, content_type=TEXT_TYPE)
        if request.method != "POST":
            return Response("add-checkpoint takes POST\n", 405, {"Allow": "POST"}, content_type=TEXT_TYPE)
        if (request.content_length or 0) > MAX_BODY:
            return Response(f"bodies are limited to {MAX_BODY} bytes\n", 413, content_type=TEXT_TYPE)
        body = request.stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return Response(f"bodies are limited to {MAX_BODY} bytes\n", 413, content_type=TEXT_TYPE)
        try:
            return Response(witness.add_checkpoint(body), 200, content_type=TEXT_TYPE)
        except Refusal as refusal:
            log.info("add-checkpoint refused: %d %s", refusal.status, refusal.body.strip())
            return Response(refusal.body, refusal.status, content_type=refusal.content_type)
        except Exception:
            log.exception("add-checkpoint failed")
            return Response("internal error\n", 500, content_type=TEXT_TYPE)

    return app


def load_witness(state_path: Path, key_path: Path, name: str) -> Witness:
    """The witness of a state file and a key file; only tests set REGISTRY_WITNESS_TEST_PAUSE."""
    cosigner = cosignature.Cosigner(name, keys.read_private(Path(key_path)).private_key)
    stage = os.environ.get(PAUSE_VARIABLE)
    return Witness(State(state_path, pause=_pause_at(stage) if stage else None), cosigner)


def _pause_at(stage: str) -> Callable[[str], None]:
    """Blocks a request for good at ``stage``, after saying so on stderr: tests kill the process there."""

    def pause(reached: str) -> None:
        if reached == stage:
            print(f"paused {reached}", file=sys.stderr, flush=True)
            threading.Event().wait()

    return pause


def app_from_environ() -> Callable:
    """For gunicorn: ``gunicorn 'registry.witness.server:app_from_environ()'``."""
    return make_app(load_witness(Path(os.environ["REGISTRY_WITNESS_STATE"]),
                                 Path(os.environ["REGISTRY_WITNESS_KEY"]), os.environ["REGISTRY_WITNESS_NAME"]))


def serve(witness: Witness, host: str, port: int, echo: Callable[[str], None] = print) -> None:
    """Serve until the process stops; stopping it at any moment loses nothing a cosignature vouched for.

    Port 0 takes a free port; the line printed names it.
    """
    server = make_server(host, port, make_app(witness), threaded=True)
    echo(f"witness {witness.cosigner.verifier.vkey()} listening on http://{host}:{server.port}/add-checkpoint")
    try:
        server.serve_forever()
    finally:
        server.server_close()
