"""History: batched writes, keyset pagination, filters, per-user isolation, CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from client import Prediction
from gateway.db import make_engine, migrate
from gateway.errors import BadRequest
from gateway.history import (
    CSV_COLUMNS,
    HistoryQuery,
    HistoryRow,
    HistoryWriter,
    csv_lines,
    decode_cursor,
    encode_cursor,
    get_record,
    list_page,
)
from gateway.schemas import HistoryRecord

T0 = datetime(2026, 11, 1, 12, 0, 0)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    migrate(engine)
    return engine


def row(i: int, user: str = "alice", model: str = "resnet18", **kw: object) -> HistoryRow:
    values: dict = dict(
        id=uuid.uuid4().hex, request_id=f"req-{i}", created_at=T0 + timedelta(seconds=i), user=user,
        key_id="k1", model=model, version=1, image_sha256=f"{i:064x}", top_k=2,
        predictions=[Prediction("tabby", 281, 0.5)], latency_ms=1.5, cached=False,
        status="ok", http_status=200, error=None,
    )  # fmt: skip
    values.update(kw)
    return HistoryRow(**values)


def write(engine: Engine, rows: list[HistoryRow]) -> None:
    async def go() -> None:
        writer = HistoryWriter(engine, flush_interval_s=0.01)
        writer.start()
        for r in rows:
            writer.add(r)
        await writer.close()

    asyncio.run(go())


def test_writer_batches_rows_and_flushes_on_close(engine: Engine) -> None:
    outcomes: list[tuple[str, int]] = []

    async def go() -> None:
        writer = HistoryWriter(engine, flush_interval_s=0.05, on_result=lambda k, n: outcomes.append((k, n)))
        writer.start()
        for i in range(30):
            writer.add(row(i))
        assert writer.pending == 30  # nothing waits on the database
        await asyncio.sleep(0.2)
        assert writer.pending == 0
        writer.add(row(99))
        await writer.close()

    asyncio.run(go())
    assert outcomes[0] == ("written", 30)  # one statement for the burst
    assert sum(n for k, n in outcomes if k == "written") == 31
    rows, _ = list_page(engine, HistoryQuery(user="alice", limit=100))
    assert len(rows) == 31


def test_failed_writes_are_kept_and_retried(engine: Engine) -> None:
    outcomes: list[tuple[str, int]] = []

    async def go() -> None:
        writer = HistoryWriter(engine, flush_interval_s=0.01, on_result=lambda k, n: outcomes.append((k, n)))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE classifications RENAME TO classifications_away"))
        writer.add(row(1))
        assert not await writer.flush()
        assert writer.pending == 1
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE classifications_away RENAME TO classifications"))
        assert await writer.flush()
        assert writer.pending == 0

    asyncio.run(go())
    assert ("failed", 1) in outcomes and ("written", 1) in outcomes


def test_queue_overflow_drops_the_oldest_and_counts(engine: Engine) -> None:
    outcomes: list[tuple[str, int]] = []

    async def go() -> None:
        writer = HistoryWriter(engine, queue_max=3, on_result=lambda k, n: outcomes.append((k, n)))
        for i in range(5):
            writer.add(row(i))
        assert writer.pending == 3
        await writer.flush()

    asyncio.run(go())
    assert ("dropped", 1) in outcomes
    rows, _ = list_page(engine, HistoryQuery(user="alice"))
    assert [r.request_id for r in rows] == ["req-4", "req-3", "req-2"]


def test_pages_are_newest_first_and_cursor_walks_everything_once(engine: Engine) -> None:
    rows = [row(i) for i in range(23)] + [row(i, user="bob") for i in range(5)]
    rows.append(row(23, created_at=T0 + timedelta(seconds=22)))  # a tie on created_at
    write(engine, rows)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, next_cursor = list_page(engine, HistoryQuery(user="alice", cursor=cursor, limit=10))
        seen += [r.id for r in page]
        stamps = [(r.created_at, r.id) for r in page]
        assert stamps == sorted(stamps, reverse=True)
        pages += 1
        if next_cursor is None:
            break
        cursor = decode_cursor(next_cursor)
    assert pages == 3 and len(seen) == 24 and len(set(seen)) == 24


def test_filters_by_model_and_time_range(engine: Engine) -> None:
    write(engine, [row(i, model="resnet18" if i % 2 else "resnet50") for i in range(10)])
    by_model, _ = list_page(engine, HistoryQuery(user="alice", model="resnet50"))
    assert {r.model for r in by_model} == {"resnet50"} and len(by_model) == 5
    ranged, _ = list_page(
        engine, HistoryQuery(user="alice", since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=6))
    )
    assert sorted(r.request_id for r in ranged) == ["req-3", "req-4", "req-5"]


def test_users_see_only_their_records_admins_everything(engine: Engine) -> None:
    mine, theirs = row(1), row(2, user="bob")
    write(engine, [mine, theirs])
    assert get_record(engine, mine.id, "alice") is not None
    assert get_record(engine, theirs.id, "alice") is None
    assert get_record(engine, theirs.id, None) is not None  # admin
    everyone, _ = list_page(engine, HistoryQuery(user=None))
    assert {r.user for r in everyone} == {"alice", "bob"}


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(T0, "abc")) == (T0, "abc")
    for bad in ("", "not-a-cursor", "e30", "W10"):
        with pytest.raises(BadRequest):
            decode_cursor(bad)


def test_csv_export_has_every_row_and_neutralises_formulas(engine: Engine) -> None:
    write(engine, [row(i) for i in range(5)] + [row(9, error='=HYPERLINK("http://x")', status="error")])
    text_out = "".join(csv_lines(engine, HistoryQuery(user="alice"), max_rows=1000))
    records = list(csv.reader(io.StringIO(text_out)))
    assert tuple(records[0]) == CSV_COLUMNS
    assert len(records) == 7
    error_col = CSV_COLUMNS.index("error")
    assert records[1][error_col].startswith("'=")
    capped = list(csv.reader(io.StringIO("".join(csv_lines(engine, HistoryQuery(user="alice"), max_rows=2)))))
    assert len(capped) == 3


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM classifications")).scalar_one())


@pytest.mark.parametrize("write_fails", [True, False])
def test_a_cancelled_flush_loses_no_batch_and_duplicates_none(engine: Engine, write_fails: bool) -> None:
    """Finding: a batch taken off the queue was lost when its hand-off (the flush) was cancelled."""
    import threading

    async def go() -> tuple[int, int]:
        writer = HistoryWriter(engine)
        real_write = writer._write
        release = threading.Event()

        def slow_write(batch: list[HistoryRow]) -> None:
            release.wait(5)
            if write_fails:
                raise RuntimeError("database went away")
            real_write(batch)

        writer._write = slow_write  # type: ignore[method-assign]
        for i in range(3):
            writer.add(row(i))
        flush = asyncio.create_task(writer.flush())
        await asyncio.sleep(0.05)  # the batch is off the queue, its write in a thread
        flush.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await flush
        writer._write = real_write  # type: ignore[method-assign]
        await writer.close()  # waits for the orphaned write, then flushes what came back
        return _count(engine), writer.pending

    assert asyncio.run(go()) == (3, 0)


def test_csv_export_reads_its_first_page_before_returning(tmp_path: Path) -> None:
    """Finding: during a database outage the export answered 200 with only its header."""
    broken = make_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables: every query fails
    with pytest.raises(Exception) as caught:
        csv_lines(broken, HistoryQuery(user="alice"), max_rows=10)
    assert "classifications" in str(caught.value)


def test_the_api_record_is_a_view_of_the_one_row_type() -> None:
    """``schemas.HistoryRecord`` declares the public columns of ``HistoryRow`` (names and order), nothing of its own."""
    columns = [f.name for f in fields(HistoryRow)]
    public = list(HistoryRecord.model_fields)
    assert public == [c for c in columns if c in public]  # same names, same order
    assert set(columns) - set(public) == {"key_id", "route", "upstream_ms"}  # kept from callers
    stored = row(1, frames=3, duration_s=2.5, tta="hflip", route="stable", upstream_ms=4.0)
    shown = HistoryRecord.model_validate(stored).model_dump()
    assert shown == {name: getattr(stored, name) for name in public} | {
        "created_at": stored.created_at.replace(tzinfo=shown["created_at"].tzinfo),
        "predictions": [{"label": "tabby", "index": 281, "score": 0.5}],
    }
    assert shown["created_at"].utcoffset().total_seconds() == 0
