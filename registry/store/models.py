"""Tables. Every accepted statement is one ``log_entry``; the other tables index it.

The log entry keeps the statement exactly as received and the leaf exactly as
hashed. Licence, agreement and key tables hold only what queries need to find
and order those entries, so every answer can be replayed from the log alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Party(Base):
    __tablename__ = "party"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    authority: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PartyKey(Base):
    """A party's public key; never deleted, so old statements stay verifiable."""

    __tablename__ = "party_key"
    __table_args__ = (CheckConstraint("status IN ('active', 'retired', 'revoked', 'void')", name="status"),)

    kid: Mapped[str] = mapped_column(String(43), primary_key=True)
    party_code: Mapped[str] = mapped_column(ForeignKey("party.code"), index=True)
    jwk: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8))
    hosted: Mapped[bool] = mapped_column(Boolean, default=False)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    added_log_index: Mapped[int] = mapped_column(BigInteger)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_log_index: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_log_index: Mapped[int | None] = mapped_column(BigInteger)


class ApiToken(Base):
    """A bearer token, kept only as its SHA-256."""

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint("role IN ('authority', 'customs')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    party_code: Mapped[str] = mapped_column(ForeignKey("party.code"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LogHead(Base):
    """One row. Writers update it first, which serialises appends in the database."""

    __tablename__ = "log_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogEntry(Base):
    __tablename__ = "log_entry"
    __table_args__ = (
        CheckConstraint("kind IN ('licence', 'party_key', 'agreement')", name="kind"),
        Index("ix_log_entry_kind_subject", "kind", "subject"),
    )

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    party_code: Mapped[str | None] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kid: Mapped[str] = mapped_column(String(43))
    statement: Mapped[str] = mapped_column(Text)
    leaf: Mapped[str] = mapped_column(Text)
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogNode(Base):
    """Hash of the complete subtree of 2**level leaves starting at idx * 2**level.

    Stored in the order of ``store.nodes.node_key``, which puts the nodes of one
    proof together (migration 0005): on SQLite in the table itself, on
    PostgreSQL in the key's index, which carries the hash.
    """

    __tablename__ = "log_node"
    __table_args__ = (PrimaryKeyConstraint("node_key", postgresql_include=["hash"]), {"sqlite_with_rowid": False})

    node_key: Mapped[int] = mapped_column(BigInteger, autoincrement=False)
    level: Mapped[int] = mapped_column(SmallInteger)
    idx: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Checkpoint(Base):
    __tablename__ = "checkpoint"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Licence(Base):
    """The current version of each licence, for listing and filtering."""

    __tablename__ = "licence"
    __table_args__ = (Index("ix_licence_party_log_index", "party_code", "log_index"),)

    certificate: Mapped[str] = mapped_column(String(35), primary_key=True)
    party_code: Mapped[str] = mapped_column(ForeignKey("party.code"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    type: Mapped[str] = mapped_column(String(4))
    operator_id: Mapped[str] = mapped_column(String(17))
    # The operator's current wish decides what partners may see, also of older versions.
    consent_partners: Mapped[bool] = mapped_column(Boolean, server_default="0")
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int] = mapped_column(ForeignKey("log_entry.idx"))


class LicenceVersion(Base):
    __tablename__ = "licence_version"

    certificate: Mapped[str] = mapped_column(ForeignKey("licence.certificate"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    log_index: Mapped[int] = mapped_column(ForeignKey("log_entry.idx"), unique=True)
    # Canonical JSON of domain.licence.facts: what answering needs of the
    # version's statement and log entry, so that a lookup reads this row
    # instead (about 300 bytes, not the 1.3 KB entry). `audit` checks it
    # against the statement.
    facts: Mapped[str] = mapped_column(Text)

    # Every verification goes from a certificate to the versions logged below
    # a tree size; (certificate, log_index) finds them in one index.
    __table_args__ = (Index("ix_licence_version_certificate_log_index", "certificate", "log_index"),)


class LicenceIdentifier(Base):
    """Every operator id and alias any version of a licence has named."""

    __tablename__ = "licence_identifier"

    identifier: Mapped[str] = mapped_column(String(17), primary_key=True)
    certificate: Mapped[str] = mapped_column(ForeignKey("licence.certificate"), primary_key=True)


class Agreement(Base):
    __tablename__ = "agreement"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    log_index: Mapped[int] = mapped_column(ForeignKey("log_entry.idx"))


class AgreementVersion(Base):
    __tablename__ = "agreement_version"

    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreement.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    log_index: Mapped[int] = mapped_column(ForeignKey("log_entry.idx"), unique=True)


class Witness(Base):
    """A partner's witness (C2SP tlog-witness) that the registry submits its checkpoints to.

    The submission state lives here, not in a process, so that every server
    process of every instance on one database sees it: ``lease_owner`` and
    ``lease_until`` say which process is submitting now (taken with a
    conditional UPDATE, services/witnesses.py), ``next_attempt_at`` when
    anyone may try again after a failure.
    """

    __tablename__ = "witness"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)  # the submission prefix: add-checkpoint is below it
    vkey: Mapped[str] = mapped_column(Text, unique=True)  # its cosignature/v1 verifier key
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The size the witness says it holds for this log (its last cosignature,
    # or a 409's text/x.tlog.size body); null until it has said anything.
    witness_size: Mapped[int | None] = mapped_column(BigInteger)
    cosigned_size: Mapped[int | None] = mapped_column(BigInteger)
    last_cosigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, server_default="0")  # in a row, for the backoff
    submissions: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed_submissions: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_problem: Mapped[str | None] = mapped_column(Text)


class Cosignature(Base):
    """A witness's cosignature line on a checkpoint, checked against its key before it was kept.

    Keyed by the witness's verifier key, not its configured name: a witness
    removed (or renamed) leaves its cosignatures valid, and they stay served.
    """

    __tablename__ = "cosignature"

    tree_size: Mapped[int] = mapped_column(ForeignKey("checkpoint.tree_size"), primary_key=True)
    vkey: Mapped[str] = mapped_column(Text, primary_key=True)
    line: Mapped[str] = mapped_column(Text)  # the signature line, with its newline
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the time the cosignature states
