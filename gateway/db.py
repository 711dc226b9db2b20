"""The gateway's database: table definitions, engine construction and migrations.

SQLite (the default file under ``.state/``) and PostgreSQL (``DATABASE_URL``) are both
first-class: types are portable, timestamps are stored as naive UTC, and the schema is owned
by Alembic (``gateway/migrations``), applied with :func:`migrate` before serving. Concurrent
starters (several workers, several replicas) serialise on a lock, so a migration runs once.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["ApiKey", "Base", "ClassificationRecord", "make_engine", "migrate", "utcnow"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_lock key: "visionserve gateway migrations".
_PG_LOCK_KEY = 0x7653_6777


def utcnow() -> datetime:
    """Naive UTC now: the one timestamp form stored in both SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """An API key: only its HMAC is stored; ``id`` is the public handle shown by ``keys list``."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ClassificationRecord(Base):
    """One classification attempt (cached, served, rejected or failed)."""

    __tablename__ = "classifications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    user: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_sha256: Mapped[str] = mapped_column(String(64))
    top_k: Mapped[int] = mapped_column(Integer)
    predictions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    cached: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Frames classified and seconds of video, for a video request; None for an image.
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Why this version answered during a release (``stable``, ``weight``, ``pin``, ``shadow``).
    route: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: The Triton round trip (ms) that produced the answer; None for a cache hit (migration 0003).
    upstream_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The test-time augmentation applied (``hflip``); None for none (migration 0004).
    tta: Mapped[str | None] = mapped_column(String(16), nullable=True)

    __table_args__ = (
        Index("ix_classifications_user_created", "user", "created_at", "id"),
        Index("ix_classifications_created", "created_at", "id"),
        Index("ix_classifications_model_created", "model", "created_at"),
    )


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and its directory created.

    WAL lets readers (history queries) run while a worker writes, and the busy timeout makes
    several workers' writers queue instead of failing with "database is locked".
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Any]:
    """Hold a cross-process lock for the migration and yield the connection to migrate on."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
    if lock_path is None:
        with engine.connect() as conn:
            yield conn
        return
    with open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest Alembic revision; returns that revision.

    Safe to call from every process at start: one migrates, the others wait and find
    nothing to do.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with _migration_lock(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()
        revision = MigrationContext.configure(conn).get_current_revision()
    return revision or ""
