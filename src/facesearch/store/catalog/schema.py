"""Tables of the catalog (SQLAlchemy 2). SQLite by default; any SQLAlchemy URL (PostgreSQL) works."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class MetaRow(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class CollectionRow(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    purpose: Mapped[str] = mapped_column(Text)
    lawful_basis: Mapped[str] = mapped_column(String(32))
    biometric_condition: Mapped[str] = mapped_column(String(48))
    retention_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    """The collection's AES key, encrypted by the master key. Deleting it shreds the collection."""
    people_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether the collection's declared purpose allows grouping its faces into people."""
    template_recipe: Mapped[str] = mapped_column(String(32))
    """The recipe of every template of this collection (``vision/recipes.py``); changed only by a reindex, in the
    transaction that replaces them all."""
    index_generation: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped in the same transaction as every change to this collection's faces; the vector index
    records the generation it reflects, so a mismatch on open means a crash came between the two."""

    images: Mapped[list[ImageRow]] = relationship(back_populates="collection", cascade="all, delete-orphan")


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("collection_id", "content_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    content_id: Mapped[str] = mapped_column(String(64))
    source_path: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    byte_size: Mapped[int] = mapped_column(Integer)
    face_count: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    collection: Mapped[CollectionRow] = relationship(back_populates="images")
    faces: Mapped[list[FaceRow]] = relationship(back_populates="image", cascade="all, delete-orphan")


class FaceRow(Base):
    __tablename__ = "faces"
    # AUTOINCREMENT: a deleted face's id is never reused, so a stale vector can never point at a new face.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    left: Mapped[int] = mapped_column(Integer)
    top: Mapped[int] = mapped_column(Integer)
    right: Mapped[int] = mapped_column(Integer)
    bottom: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[list[list[float]]] = mapped_column(JSON)
    rotation: Mapped[int] = mapped_column(Integer, default=0)
    sharpness: Mapped[float] = mapped_column(Float, default=0.0)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    person_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    """Set when a person placed this face (merge, split): clustering never moves it."""
    embedder: Mapped[str] = mapped_column(String(32))
    """The recipe that made the template (``vision/recipes.py``), the collection's."""
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    """The template, AES-GCM encrypted with the collection key: the vector index is rebuilt from these."""

    image: Mapped[ImageRow] = relationship(back_populates="faces")


class AuditRow(Base):
    """One entry of the hash-chained audit log (see ``facesearch.safeguards.audit``)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40), index=True)
    """UTC time, ISO 8601, stored as text so that it hashes the same on every database."""
    actor: Mapped[str] = mapped_column(String(200), index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), index=True)
    purpose: Mapped[str] = mapped_column(Text, default="")
    collection: Mapped[str] = mapped_column(String(63), default="")
    details: Mapped[str] = mapped_column(Text)
    """Canonical JSON of the event's own fields."""
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Unique: two writers that read the same head cannot both append after it (the chain cannot fork)."""
    hash: Mapped[str] = mapped_column(String(64))


class ErasureReceiptRow(Base):
    __tablename__ = "erasure_receipts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, object]] = mapped_column(JSON)
    """What was removed (counts and ids): never a template, image or thumbnail."""


class ProtectedTemplateRow(Base):
    """The template of a person who objected to being indexed again, kept only with their explicit
    agreement (recorded here) so that ingest can recognise and skip their face."""

    __tablename__ = "protected_templates"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    agreement_reference: Mapped[str] = mapped_column(Text)
    """Where the person's explicit agreement to keeping this template is recorded."""
    recorded_by: Mapped[str] = mapped_column(String(200))
    template_recipe: Mapped[str] = mapped_column(String(32))
    """Ingest compares it only with faces of this recipe (an objection keeps one template per recipe)."""
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    """Encrypted with the objections key (wrapped by the master key, in ``meta``)."""


class ReindexTemplateRow(Base):
    """A face's template re-embedded by ``facesearch reindex``, waiting until every face of its collection has one:
    then all replace the collection's templates in one transaction (``store/catalog/reindex.py``)."""

    __tablename__ = "reindex_templates"

    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    template_recipe: Mapped[str] = mapped_column(String(32))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    """Encrypted with the collection key, as ``faces.embedding``."""


class PersonRow(Base):
    """A group of faces the clustering (or a person correcting it) says belong to one individual.
    A name here is a label, not an enrolment: enrolled subjects need their own consent record."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKeyRow(Base):
    """An API key: only its sha256 is stored; the key itself is shown once, when it is created."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    """The key's public part, to find its row without comparing secrets."""
    secret_hash: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(Text, default="")
    """Declared purpose, written into the audit entry of every search made with the key."""
    collections: Mapped[list[str]] = mapped_column(JSON, default=list)
    """For ingest keys: the collections it may add to (empty: none)."""
    consent_attestation: Mapped[str] = mapped_column(Text, default="", server_default="")
    """Where the consent of the subjects the key enrols is held, attested by the administrator who made it."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SubjectRow(Base):
    """A named person enrolled with example faces, and the consent that allows it (who gave it, when, to
    what). Withdrawing consent erases the subject's faces and this row."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("collection_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    consent_given_by: Mapped[str] = mapped_column(Text)
    consent_scope: Mapped[str] = mapped_column(Text)
    consent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SubjectExampleRow(Base):
    """Which images are a subject's example faces (an image is the example of at most one subject)."""

    __tablename__ = "subject_examples"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)


class RateLimitCallRow(Base):
    """One counted call of an API key (a search, or a read of the gallery's faces) in the last rate window, when the
    budget is kept in the catalog so that every server process on it shares it (``store/rate_limits.py``)."""

    __tablename__ = "rate_limit_calls"
    __table_args__ = (Index("ix_rate_limit_calls_key_at", "key_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    """Seconds since the epoch, by the clock of the server that counted it."""


class ShownItemRow(Base):
    """A face or image a counted read just showed an API key, whose picture then follows uncounted, when rate limits
    are kept in the catalog (``store/rate_limits.py``): the key's next picture may be asked of another process."""

    __tablename__ = "shown_items"
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    """``face`` or ``image``."""
    item_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    """Seconds since the epoch when it was last shown."""
