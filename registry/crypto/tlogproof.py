"""C2SP tlog-proof (``c2sp.org/tlog-proof@v1``): an entry's inclusion proof and its checkpoint, in one text file.

    c2sp.org/tlog-proof@v1
    extra <base64 of opaque data>          (optional)
    index <the entry's index>
    <base64 hash>                          (the inclusion proof, leaf's sibling first)
    ...
    <blank line>
    <the checkpoint note, verbatim, with its signature and cosignature lines>

Checked offline against the log's key and a witness policy alone. The
registry puts the entry's exact logged leaf in ``extra``: the spec's
"additional data necessary to reconstruct the record hash", and what says
which statement (its SHA-256) was logged. Spec: https://c2sp.org/tlog-proof.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

HEADER = "c2sp.org/tlog-proof@v1"
SUFFIX = ".tlog-proof"
HASH_SIZE = 32
MAX_HASHES = 63  # a proof in a tree of up to 2**63 entries
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class ProofFormatError(ValueError):
    """Not a tlog-proof, or one malformed."""


@dataclass(frozen=True)
class Proof:
    index: int
    hashes: list[bytes]
    checkpoint: str  # the signed note, verbatim
    extra: bytes | None = None

    def text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {base64.b64encode(self.extra).decode()}")
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(digest).decode() for digest in self.hashes]
        return "\n".join(lines) + "\n\n" + self.checkpoint


def is_proof(text: str) -> bool:
    return text.startswith(HEADER + "\n")


def parse(text: str) -> Proof:
    head, blank, checkpoint = text.partition("\n\n")
    if not blank:
        raise ProofFormatError("no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ProofFormatError(f"the first line is not {HEADER}")
    position, extra = 1, None
    if len(lines) > 1 and lines[1].startswith("extra "):
        extra = _base64(lines[1][len("extra "):], "extra")
        position = 2
    if len(lines) <= position or not lines[position].startswith("index "):
        raise ProofFormatError("no index line")
    index = lines[position][len("index "):]
    if not _DECIMAL.fullmatch(index):
        raise ProofFormatError("the index is not a decimal without leading zeros")
    hashes = [_base64(line, "an inclusion proof line") for line in lines[position + 1:]]
    if len(hashes) > MAX_HASHES:
        raise ProofFormatError(f"more than {MAX_HASHES} inclusion proof lines")
    if any(len(digest) != HASH_SIZE for digest in hashes):
        raise ProofFormatError("an inclusion proof line is not a 32-byte hash")
    return Proof(int(index), hashes, checkpoint, extra)


def _base64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ProofFormatError(f"{what} is not base64") from exc
