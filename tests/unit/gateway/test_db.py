"""Schema and migrations: Alembic owns the schema and matches the ORM models."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from gateway import migrations
from gateway.db import Base, make_engine, migrate


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


HEAD = ScriptDirectory.from_config(_config()).get_current_head()


def test_migrate_creates_the_schema_once_and_is_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'gw.db'}")
    assert HEAD is not None and HEAD != "0001"
    assert migrate(engine) == HEAD
    assert migrate(engine) == HEAD
    assert {"api_keys", "classifications", "alembic_version"} <= set(inspect(engine).get_table_names())


def test_orm_models_match_the_migrations(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_concurrent_migrations_do_not_collide(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(make_engine(url)))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [HEAD] * 4


def test_a_database_at_the_first_revision_upgrades_and_keeps_its_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    cfg = _config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "INSERT INTO classifications (id, request_id, created_at, user, key_id, model, version,"
                " image_sha256, top_k, predictions, latency_ms, cached, status, http_status)"
                " VALUES ('r1', 'q1', '2026-12-01 10:00:00', 'alice', 'k1', 'resnet18', 3, 'ab', 5,"
                " '[]', 12.5, 0, 'served', 200)"
            )
        )
        conn.commit()
    assert migrate(engine) == HEAD
    with engine.connect() as conn:
        row = conn.execute(text("SELECT user, version, frames, duration_s, route FROM classifications")).one()
    assert tuple(row) == ("alice", 3, None, None, None)


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
