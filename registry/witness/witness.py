"""add-checkpoint as C2SP tlog-witness specifies it: every check, in the spec's terms and status codes.

A request is the old size line, up to 63 consistency proof lines, a blank
line and the signed checkpoint. The witness cosigns only a checkpoint that
its log's key signed and that a proof shows consistent with the newest one
it cosigned before, and records it before it answers.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..crypto import cosignature, merkle, note
from .state import State

MAX_PROOF_LINES = 63
# The spec limits proofs to 63 lines (some 2.8 KB); a note must be allowed at
# least 16 signatures, and post-quantum ones run to 5 KB each.
MAX_BODY = 128 * 1024
SIZE_TYPE = "text/x.tlog.size"
TEXT_TYPE = "text/plain; charset=utf-8"
_SIZE = re.compile(r"0|[1-9][0-9]*")

log = logging.getLogger("registry.witness")


class Refusal(Exception):  # noqa: N818 - a refusal is an answer, not a fault
    """An answer other than a cosignature: its status, body and content type."""

    def __init__(self, status: int, body: str, content_type: str = TEXT_TYPE):
        super().__init__(body)
        self.status = status
        self.body = body if body.endswith("\n") else body + "\n"
        self.content_type = content_type


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: list[bytes]
    signed_note: str


def parse_request(body: bytes) -> AddCheckpoint:
    """The request's parts, or a 400 for anything not in the spec's form."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(400, "the body is not UTF-8") from exc
    head, blank, signed = text.partition("\n\n")
    if not blank:
        raise Refusal(400, "no blank line between the old size and proof lines and the checkpoint")
    lines = head.split("\n")
    size = lines[0].removeprefix("old ")
    if size == lines[0] or not _SIZE.fullmatch(size):
        raise Refusal(400, "the first line must be 'old ' and a size in decimal without leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise Refusal(400, "a consistency proof line is not base64") from exc
        if len(digest) != merkle.HASH_SIZE:
            raise Refusal(400, "a consistency proof line is not a 32-byte hash")
        proof.append(digest)
    return AddCheckpoint(int(size), proof, signed)


class Witness:
    """Cosigns checkpoints of the logs in ``state`` with ``cosigner``.

    ``before_lock`` (tests only) runs once a request has passed every check
    that needs no state, just before it takes the state's write lock.
    """

    def __init__(self, state: State, cosigner: cosignature.Cosigner, clock: Callable[[], float] = time.time,
                 before_lock: Callable[[], None] | None = None):
        self.state = state
        self.cosigner = cosigner
        self.clock = clock
        self.before_lock = before_lock

    def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line(s) for the request's checkpoint, or a ``Refusal``."""
        request = parse_request(body)
        text, checkpoint = self._open(request.signed_note)
        if request.old_size > checkpoint.tree_size:
            raise Refusal(400, f"old size {request.old_size} is above the checkpoint's {checkpoint.tree_size}")
        if request.old_size == 0 and request.proof:
            raise Refusal(400, "a consistency proof from size 0 must be empty")
        if self.before_lock is not None:
            self.before_lock()
        with self.state.locked(checkpoint.origin) as update:
            current = update.current
            if request.old_size != current.tree_size:
                raise Refusal(409, f"{current.tree_size}", SIZE_TYPE)
            if checkpoint.tree_size == current.tree_size and checkpoint.root_hash != current.root_hash:
                self._evidence("another root at the size it cosigned", request)
                raise Refusal(409, f"{current.tree_size}", SIZE_TYPE)
            if current.tree_size > 0:
                try:
                    merkle.verify_consistency(current.tree_size, checkpoint.tree_size, request.proof,
                                              current.root_hash, checkpoint.root_hash)
                except merkle.ProofError as exc:
                    self._evidence(f"a consistency proof that fails ({exc})", request)
                    raise Refusal(422, f"the consistency proof does not verify: {exc}") from exc
            # A cosignature says: as of its time, this is the largest tree seen. So time
            # never goes back, and a larger tree never shares a second with a smaller one.
            moved = (checkpoint.tree_size, checkpoint.root_hash) != (current.tree_size, current.root_hash)
            timestamp = max(int(self.clock()), current.cosigned_at + moved)
            update.record(checkpoint.tree_size, checkpoint.root_hash, timestamp)
        log.info("cosigned %s at size %d (from %d)", checkpoint.origin, checkpoint.tree_size, current.tree_size)
        return self.cosigner.sign(text, timestamp)

    def _open(self, signed_note: str) -> tuple[str, note.Checkpoint]:
        """The note's text and checkpoint: 400 if malformed, 404 for an unknown log, 403 if its key did not sign."""
        try:
            note.split_note(signed_note)
        except note.NoteError as exc:
            raise Refusal(400, f"the checkpoint is not a signed note: {exc}") from exc
        origin = signed_note.partition("\n")[0]
        known = self.state.log(origin)
        if known is None:
            raise Refusal(404, f"this witness does not witness {origin!r}")
        verifiers = [note.Verifier.from_vkey(vkey) for vkey in known.keys]
        try:
            text, verified = note.verified_by(signed_note, verifiers)
        except note.NoteError as exc:
            raise Refusal(403, f"a signature by the log's key does not verify: {exc}") from exc
        if not verified:
            raise Refusal(403, "no signature by the log's key")
        try:
            return text, note.Checkpoint.parse(text)
        except note.NoteError as exc:
            raise Refusal(400, f"the note is not a checkpoint: {exc}") from exc

    @staticmethod
    def _evidence(what: str, request: AddCheckpoint) -> None:
        # The spec: a log's signed checkpoint that fails is worth keeping, as
        # it may prove the log misbehaved. The note is public; it goes whole.
        log.warning("refused %s; the signed checkpoint was:\n%s", what, request.signed_note)
