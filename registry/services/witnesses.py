"""The registry's witnesses: configured by the administrator, fed each new checkpoint, their cosignatures kept.

After the registry signs a checkpoint it submits it to every witness with
C2SP tlog-witness ``add-checkpoint`` (the witness's size as old size, and a
consistency proof from it), checks the cosignature/v1 line it gets back
against the witness's key, and keeps it (table ``cosignature``); the
checkpoint notes it serves carry those lines (``cosigned_note``).

A witness that is down, slow or refusing must never delay publishing or
verification, so nothing here runs in a publishing transaction or in a
request: each server process runs a submitter thread (``runtime.witnessing``)
that calls ``submit_due`` when its own process commits and every
``witness_interval_seconds`` (for checkpoints signed by other processes), with
a short timeout on each HTTP call and an exponential backoff after failures.

Several processes (gunicorn workers, several instances on one database)
share the work through the database, never through memory: before it
submits to a witness, a process takes that witness's lease with a
conditional UPDATE (free, or expired, and not in backoff), which one
process at most wins, on PostgreSQL as on SQLite. The lease outlives any
one round of submission (its timeouts bound it), so a process that dies
holding it delays that witness by one lease at most. The backoff, the counts
and the last problem are in the same row, so every process, /readyz and the
home page see them.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from ..crypto import cosignature, note, tlogproof
from ..errors import ConflictError, InvalidInputError, NotCosignedError, NotFoundError, field_errors
from ..store.models import Checkpoint, Cosignature, Licence, LogEntry, Witness
from ..store.reads import Reader
from . import log

logger = logging.getLogger(__name__)

MAX_NAME = 64
SIZE_TYPE = "text/x.tlog.size"
# A witness answers a few lines; anything much longer is not an answer.
MAX_ANSWER = 64 * 1024
# Problems as shown on /readyz are cut to this length: a witness's text is not ours to show at length.
MAX_PROBLEM = 300
MAX_QUORUM = 64


# --- configuration (the admin CLI) ----------------------------------------------------------


def _check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not name.isprintable() or any(c.isspace() for c in name):
        raise InvalidInputError(f"witness name {name!r} is not 1 to {MAX_NAME} printable characters without spaces",
                                field_errors("name", f"1 to {MAX_NAME} printable characters without spaces"))
    return name


def _check_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise InvalidInputError(f"witness URL {url!r} is not an http(s) URL without query or fragment",
                                field_errors("url", "the witness's submission prefix, e.g. https://witness.example"))
    # The submission prefix: add-checkpoint is below it (c2sp.org/tlog-witness).
    return url.rstrip("/").removesuffix("/add-checkpoint")


def _check_vkey(vkey: str) -> cosignature.CosignatureVerifier:
    try:
        return cosignature.CosignatureVerifier.from_vkey(vkey)
    except note.NoteError as exc:
        raise InvalidInputError(f"witness verifier key: {exc}", field_errors("vkey", str(exc))) from exc


def add(session: Session, name: str, url: str, vkey: str, now: datetime) -> Witness:
    """Configure a witness; its first submission comes with the next pass of a submitter."""
    verifier = _check_vkey(vkey.strip())
    row = Witness(name=_check_name(name), url=_check_url(url), vkey=verifier.vkey(), added_at=now,
                  failures=0, submissions=0, failed_submissions=0)
    if session.get(Witness, row.name) is not None:
        raise ConflictError(f"a witness named {row.name} is already configured", field_errors("name", "taken"))
    same_key = session.scalars(select(Witness.name).where(Witness.vkey == row.vkey)).first()
    if same_key is not None:
        raise ConflictError(f"witness {same_key} already has this key", field_errors("vkey", "already configured"))
    session.add(row)
    session.commit()
    return row


def remove(session: Session, name: str) -> Witness:
    """Stop submitting to a witness. Its cosignatures stay: they were valid when made, and are still served."""
    row = session.get(Witness, name)
    if row is None:
        raise NotFoundError(f"no witness named {name}")
    session.delete(row)
    session.commit()
    return row


def listing(session: Session) -> list[Witness]:
    return list(session.scalars(select(Witness).order_by(Witness.name)))


# --- cosigned notes ---------------------------------------------------------------------------


class SignedCheckpoint(Protocol):
    tree_size: int
    note: str


def cosigned_note(session: Session, checkpoint: SignedCheckpoint) -> str:
    """The checkpoint's signed note with every cosignature line the registry holds at its size."""
    lines = session.scalars(select(Cosignature.line).where(Cosignature.tree_size == checkpoint.tree_size)
                            .order_by(Cosignature.vkey)).all()
    return note.add_signatures(checkpoint.note, "".join(lines)) if lines else checkpoint.note


def _counted():
    """Cosignatures by the witnesses configured now, per tree size: those a partner can expect to trust."""
    return (select(Cosignature.tree_size, func.count().label("cosignatures"))
            .join(Witness, Witness.vkey == Cosignature.vkey).group_by(Cosignature.tree_size))


def newest_cosigned(session: Session, quorum: int, retry_after: float) -> int:
    """The tree size of the newest checkpoint cosigned by at least ``quorum`` configured witnesses.

    ``quorum`` beyond the witnesses configured can never be met: 400 naming
    ``cosigned``. Otherwise, if no checkpoint has that many yet, 409
    (``NotCosignedError``) with a Retry-After: the witnesses have not caught
    up, which the caller can wait out.
    """
    configured = session.scalar(select(func.count()).select_from(Witness))
    if quorum > configured:
        raise InvalidInputError(f"cosigned={quorum}, but the registry has {configured} witnesses configured",
                                field_errors("cosigned", f"at most {configured}, the witnesses configured"))
    counted = _counted().having(func.count() >= quorum).subquery()
    size = session.scalar(select(func.max(counted.c.tree_size)))
    if size is None:
        raise NotCosignedError(f"no checkpoint has {quorum} cosignatures by the registry's witnesses yet; "
                               "they cosign new checkpoints within a minute or so when they are up",
                               headers={"Retry-After": str(max(1, round(retry_after)))})
    return size


def best_for(session: Session, index: int) -> Checkpoint | None:
    """The checkpoint to prove entry ``index`` against: the most cosigned one that covers it, the newest of those.

    None when no checkpoint covers the entry.
    """
    counted = _counted().where(Cosignature.tree_size > index).subquery()
    size = session.execute(select(counted.c.tree_size)
                           .order_by(counted.c.cosignatures.desc(), counted.c.tree_size.desc()).limit(1)).scalar()
    if size is not None:
        return session.get(Checkpoint, size)
    newest = log.latest_checkpoint(session)
    return newest if newest is not None and newest.tree_size > index else None


def proof_file(session: Session, index: int) -> str:
    """A c2sp.org/tlog-proof of log entry ``index``: its leaf (in ``extra``), its inclusion proof, and the
    cosigned note of the most cosigned checkpoint that covers it (``best_for``)."""
    entry = session.get(LogEntry, index)
    checkpoint = best_for(session, index) if entry is not None else None
    if checkpoint is None:
        raise NotFoundError(f"no signed checkpoint covers log index {index}",
                            field_errors("index", "not in the log"))
    hashes = log.inclusion_proofs(Reader.of(session), [index], checkpoint.tree_size)[index]
    return tlogproof.Proof(index, hashes, cosigned_note(session, checkpoint), entry.leaf.encode()).text()


def licence_proof_file(session: Session, certificate: str) -> tuple[str, str]:
    """The proof file of a licence's current version, and a file name for it."""
    licence = session.get(Licence, certificate)
    if licence is None:
        raise NotFoundError(f"no licence {certificate}")
    return proof_file(session, licence.log_index), f"{certificate}-v{licence.version}{tlogproof.SUFFIX}"


# --- submission ---------------------------------------------------------------------------------


class Unreachable(Exception):  # noqa: N818 - it says what the witness was
    """No HTTP answer: refused connection, timeout, DNS, TLS."""


Post = Callable[[str, bytes, float], tuple[int, str, str]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A witness answers where it is configured; a redirect of a POST is not followed anywhere.
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_post(url: str, body: bytes, timeout: float) -> tuple[int, str, str]:
    """POST ``body``; (status, content type without parameters, body text) of any HTTP answer."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8",
                                              "User-Agent": "aeo-registry-witness-submitter"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.headers.get_content_type(), _text(response.read(MAX_ANSWER + 1))
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get_content_type(), _text(exc.read(MAX_ANSWER + 1))
    except (urllib.error.URLError, OSError, ValueError) as exc:  # TimeoutError is an OSError
        raise Unreachable(str(getattr(exc, "reason", exc))) from exc


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def request_body(old_size: int, proof: list[bytes], signed_note: str) -> bytes:
    """An add-checkpoint request: the old size line, the proof lines, a blank line, the note."""
    lines = [f"old {old_size}", *(log.b64(digest) for digest in proof)]
    return ("\n".join(lines) + "\n\n" + signed_note).encode()


@dataclass(frozen=True)
class Outcome:
    """What one pass did for one witness: ``cosigned``, ``failed``, ``up_to_date``, ``waiting`` or ``busy``."""

    witness: str
    result: str
    tree_size: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Timing:
    timeout: float  # each HTTP call
    interval: float  # between passes of a submitter; the first step of the backoff
    backoff_max: float

    @classmethod
    def of(cls, settings) -> Timing:
        """From the ``REGISTRY_WITNESS_*`` settings (config.Settings)."""
        return cls(settings.witness_timeout_seconds, settings.witness_interval_seconds,
                   settings.witness_backoff_max_seconds)

    @property
    def lease(self) -> timedelta:
        # Two calls at most (the second after a 409 told the witness's size), and room to record.
        return timedelta(seconds=2 * self.timeout + 30)

    def backoff(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.interval * 2 ** min(failures - 1, 30), self.backoff_max))


class _Failed(Exception):  # noqa: N818
    def __init__(self, problem: str, witness_size: int | None = None, fork: bool = False):
        super().__init__(problem)
        self.problem = problem
        self.witness_size = witness_size
        self.fork = fork


def process_id() -> str:
    """Names this process in lease rows: host, pid, and a random part for a pid reused."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def submit_due(sessions: Callable[[], Session], timing: Timing, now: Callable[[], datetime],
               post: Post = http_post, owner: str | None = None) -> list[Outcome]:
    """One pass: submit the newest checkpoint to each witness that lacks it, is not in backoff, and is free."""
    owner = owner or process_id()
    with sessions() as session:
        names = list(session.scalars(select(Witness.name).order_by(Witness.name)))
    return [outcome for name in names if (outcome := _submit_one(sessions, name, timing, now, post, owner))]


def _submit_one(sessions: Callable[[], Session], name: str, timing: Timing, now: Callable[[], datetime],
                post: Post, owner: str) -> Outcome | None:
    with sessions() as session:
        row = session.get(Witness, name)
        checkpoint = log.latest_checkpoint(session)
        if row is None or checkpoint is None:
            return None
        if row.cosigned_size == checkpoint.tree_size:
            return Outcome(name, "up_to_date", checkpoint.tree_size)
        started = now()
        if row.next_attempt_at is not None and row.next_attempt_at > started:
            return Outcome(name, "waiting", problem=row.last_problem)
        if not take_lease(session, name, owner, checkpoint.tree_size, started, started + timing.lease):
            return Outcome(name, "busy")
        witness = (row.url, row.vkey, row.witness_size)
    try:
        result = _exchange(sessions, name, *witness, timing.timeout, post)
    except _Failed as failed:
        _record_failure(sessions, name, owner, failed, timing, now())
        return Outcome(name, "failed", problem=failed.problem)
    except Exception as exc:  # a fault of ours: let go of the lease, count it, say so
        logger.exception("submitting to witness %s failed", name)
        _record_failure(sessions, name, owner, _Failed(f"internal error: {type(exc).__name__}"), timing, now())
        return Outcome(name, "failed", problem="internal error")
    size = _record_success(sessions, name, owner, result, now())
    return Outcome(name, "cosigned", size)


def take_lease(session: Session, name: str, owner: str, size: int, now: datetime, until: datetime) -> bool:
    """Take the witness's lease if it is free or expired, the witness is not in backoff, and it still lacks
    ``size``; commit at once.

    All in the one conditional UPDATE: a process that read the row before
    another finished submitting ``size`` (and let go of the lease) finds
    nothing left to take, so no checkpoint goes to a witness twice.
    """
    taken = session.execute(
        update(Witness)
        .where(Witness.name == name,
               or_(Witness.lease_until.is_(None), Witness.lease_until < now),
               or_(Witness.next_attempt_at.is_(None), Witness.next_attempt_at <= now),
               or_(Witness.cosigned_size.is_(None), Witness.cosigned_size != size))
        .values(lease_owner=owner, lease_until=until, last_attempt_at=now)
    ).rowcount
    session.commit()
    return taken == 1


@dataclass(frozen=True)
class _Cosigned:
    tree_size: int
    vkey: str
    line: str
    cosigned_at: datetime


def _exchange(sessions: Callable[[], Session], name: str, url: str, vkey: str, witness_size: int | None,
              timeout: float, post: Post) -> _Cosigned:
    """Submit the newest checkpoint; after a 409 that tells the witness's size, once more from that size."""
    verifier = cosignature.CosignatureVerifier.from_vkey(vkey)
    old = witness_size or 0
    for _ in range(2):
        with sessions() as session:
            # Read afresh: the newest checkpoint, and the proof from the old size, in one short session
            # that is closed before any HTTP call.
            checkpoint = log.latest_checkpoint(session)
            size, signed_note = checkpoint.tree_size, checkpoint.note
            if old > size:
                raise _Failed(f"the witness holds size {old}, beyond this registry's newest checkpoint {size}: "
                              "it has cosigned a checkpoint this database does not have", old, fork=True)
            proof = log.consistency_proof(Reader.of(session), old, size) if 0 < old < size else []
        try:
            status, content_type, body = post(f"{url}/add-checkpoint", request_body(old, proof, signed_note),
                                              timeout)
        except Unreachable as exc:
            raise _Failed(f"unreachable: {exc}") from exc
        if status == 200:
            return _cosignature(signed_note, size, body, verifier)
        if status == 409 and content_type == SIZE_TYPE:
            told = _size(body)
            if told is None:
                raise _Failed("409 with a malformed size")
            if told == old:
                # The witness holds a tree of this very size and refuses ours: another root at its size.
                raise _Failed(f"409 at size {told}: the witness holds another tree of that size", told, fork=True)
            old = told
            continue
        fork = status == 422
        raise _Failed(f"HTTP {status}: {body.strip()[:MAX_PROBLEM]}", old if status == 409 else None, fork=fork)
    raise _Failed(f"the witness's size kept changing (now {old})", old)


def _size(body: str) -> int | None:
    text = body.strip()
    return int(text) if text.isdigit() and (text == "0" or not text.startswith("0")) else None


def _cosignature(signed_note: str, size: int, body: str, verifier: cosignature.CosignatureVerifier) -> _Cosigned:
    """The witness's own line among those it answered, checked against its key; anything else is a failure."""
    try:
        combined = note.add_signatures(signed_note, body if body.endswith("\n") else body + "\n")
        _, verified = note.verified_by(combined, [verifier])
    except note.NoteError as exc:
        raise _Failed(f"its answer is not a valid cosignature: {exc}") from exc
    if not verified:
        raise _Failed("its answer holds no cosignature by its configured key")
    for line in body.splitlines():
        signature = note.split_note(signed_note + line + "\n")[1][-1]
        if (signature.name, signature.key_id) == (verifier.name, verifier.hash):
            stamped = datetime.fromtimestamp(cosignature.timestamp_of(signature.signature), UTC)
            return _Cosigned(size, verifier.vkey(), line + "\n", stamped)
    raise _Failed("its answer holds no cosignature by its configured key")  # pragma: no cover - verified above


def _record_success(sessions: Callable[[], Session], name: str, owner: str, cosigned: _Cosigned,
                    now: datetime) -> int:
    with sessions() as session:
        if session.get(Cosignature, (cosigned.tree_size, cosigned.vkey)) is None:
            session.add(Cosignature(tree_size=cosigned.tree_size, vkey=cosigned.vkey, line=cosigned.line,
                                    cosigned_at=cosigned.cosigned_at))
        session.execute(update(Witness).where(Witness.name == name).values(
            witness_size=cosigned.tree_size, cosigned_size=cosigned.tree_size, last_cosigned_at=now,
            failures=0, next_attempt_at=None, last_problem=None, submissions=Witness.submissions + 1,
            **_released(owner)))
        session.commit()
    logger.info("witness %s cosigned size %d", name, cosigned.tree_size)
    return cosigned.tree_size


def _released(owner: str) -> dict:
    """Lease columns let go of, if this process still holds the lease (it may have expired and been taken)."""
    return {"lease_owner": case((Witness.lease_owner == owner, None), else_=Witness.lease_owner),
            "lease_until": case((Witness.lease_owner == owner, None), else_=Witness.lease_until)}


def _record_failure(sessions: Callable[[], Session], name: str, owner: str, failed: _Failed, timing: Timing,
                    now: datetime) -> None:
    with sessions() as session:
        row = session.get(Witness, name)
        if row is None:  # removed meanwhile
            return
        failures = row.failures + 1
        values = {"failures": failures, "failed_submissions": Witness.failed_submissions + 1,
                  "submissions": Witness.submissions + 1, "next_attempt_at": now + timing.backoff(failures),
                  "last_problem": failed.problem[:MAX_PROBLEM], **_released(owner)}
        if failed.witness_size is not None:
            values["witness_size"] = failed.witness_size
        session.execute(update(Witness).where(Witness.name == name).values(**values))
        session.commit()
    # A refusal for inconsistency is what witnesses exist to catch: it is an error, not a warning.
    (logger.error if failed.fork else logger.warning)(
        "witness %s: submission failed (%d in a row, next try in %ds): %s", name, failures,
        timing.backoff(failures).total_seconds(), failed.problem)


# --- status (/readyz, the home page) -----------------------------------------------------------


@dataclass(frozen=True)
class WitnessStatus:
    name: str
    state: str  # up_to_date, behind, failing
    cosigned_size: int | None
    behind: int  # entries the witness has not cosigned yet
    last_cosigned_at: datetime | None
    failures: int
    submissions: int
    failed_submissions: int
    next_attempt_at: datetime | None
    problem: str | None

    def as_json(self) -> dict:
        def moment(value: datetime | None) -> str | None:
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None

        return {"name": self.name, "state": self.state, "cosigned_size": self.cosigned_size, "behind": self.behind,
                "last_cosigned_at": moment(self.last_cosigned_at), "failures": self.failures,
                "submissions": self.submissions, "failed_submissions": self.failed_submissions,
                "next_attempt_at": moment(self.next_attempt_at), "problem": self.problem}


def status(session: Session) -> list[WitnessStatus]:
    newest = log.latest_checkpoint(session)
    size = newest.tree_size if newest is not None else 0
    found = []
    for row in listing(session):
        behind = size - (row.cosigned_size or 0)
        state = "failing" if row.failures else ("up_to_date" if row.cosigned_size == size else "behind")
        found.append(WitnessStatus(row.name, state, row.cosigned_size, behind, row.last_cosigned_at, row.failures,
                                   row.submissions, row.failed_submissions, row.next_attempt_at, row.last_problem))
    return found
