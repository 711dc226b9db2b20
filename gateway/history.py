"""The classification history: one row per attempt, written in batches, read per user.

Writing: ``HistoryWriter.add`` queues a row without waiting (the request path never waits
for the database); a background task writes queued rows every ``flush_interval_s`` in one
``executemany``. If the database is down, rows stay queued (up to ``queue_max``, then the
oldest are dropped and counted) and are retried; shutdown flushes what is left. Readers in
the same worker call ``flush()`` first, so a caller always sees its own last request. A batch
taken off the queue is written by a task of its own that the caller's cancellation does not
reach (a history read whose client hung up cancels its ``flush``): that task puts the batch
back if the write fails, and ``close`` waits for it, so no batch is lost in the hand-off.

Reading: newest first, keyset ("cursor") pagination on ``(created_at, id)`` — stable under
concurrent inserts, no OFFSET scans — filtered by user (admins may read everyone's), model
and time range; a CSV export walks the same pages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import anyio.to_thread
import orjson
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from client import Prediction
from gateway.background import LoopTask
from gateway.db import ClassificationRecord
from gateway.errors import BadRequest

__all__ = [
    "CSV_COLUMNS",
    "HistoryQuery",
    "HistoryRow",
    "HistoryWriter",
    "csv_lines",
    "decode_cursor",
    "encode_cursor",
    "get_record",
    "list_page",
]

log = logging.getLogger("visionserve.gateway.history")

CSV_COLUMNS = (
    "id",
    "created_at",
    "request_id",
    "user",
    "key_id",
    "model",
    "version",
    "image_sha256",
    "top_k",
    "top1_label",
    "top1_score",
    "predictions",
    "latency_ms",
    "cached",
    "status",
    "http_status",
    "error",
    "frames",
    "duration_s",
    "tta",
)
_PAGE_ROWS = 1000


@dataclass
class HistoryRow:
    """One classification attempt, as written and as read back (``created_at`` naive UTC).

    The one record type: the classifier queues it, the writer stores it, readers get it back,
    and the API's ``schemas.HistoryRecord`` reads it by attribute. ``predictions`` are the
    client's ``Prediction`` values; the database holds them as ``{label, index, score}``.
    """

    id: str
    request_id: str
    created_at: datetime
    user: str
    key_id: str
    model: str
    version: int | None
    image_sha256: str
    top_k: int
    predictions: list[Prediction]
    latency_ms: float
    cached: bool
    status: str
    http_status: int
    error: str | None = None
    frames: int | None = None  # a video: frames classified
    duration_s: float | None = None  # a video: its duration
    #: why this version answered during a release: ``stable``, ``weight``, ``pin`` or ``shadow``
    route: str | None = None
    #: the Triton round trip (ms) of the call that answered; None for a cache hit or a failure
    upstream_ms: float | None = None
    #: the test-time augmentation applied (``hflip``); None for none (migration 0004)
    tta: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The row's columns, its predictions as the JSON objects stored."""
        # A shallow copy: ``dataclasses.asdict`` deep-copies, and was half the cost of a write.
        columns = dict(self.__dict__)
        columns["predictions"] = [{"label": p.label, "index": p.index, "score": p.score} for p in self.predictions]
        return columns


_COLUMNS = tuple(f.name for f in fields(HistoryRow) if f.name != "predictions")


def _row(rec: ClassificationRecord) -> HistoryRow:
    predictions = [Prediction(p["label"], p["index"], p["score"]) for p in rec.predictions or []]
    return HistoryRow(**{name: getattr(rec, name) for name in _COLUMNS}, predictions=predictions)


class HistoryWriter:
    """Batches history rows into the database from the event loop.

    Args:
        engine: the migrated database.
        flush_interval_s: how long a row may wait for companions before being written.
        batch_rows: most rows per statement.
        queue_max: rows held while the database is failing; beyond it the oldest are dropped.
        on_result: called with ("written" | "failed" | "dropped", count) for metrics.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        flush_interval_s: float = 0.5,
        batch_rows: int = 500,
        queue_max: int = 100_000,
        on_result: Callable[[str, int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._interval_s = flush_interval_s
        self._batch_rows = batch_rows
        self._queue_max = queue_max
        self._on_result = on_result or (lambda _kind, _n: None)
        self._pending: deque[HistoryRow] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task = LoopTask("history-writer")
        self._writes: set[asyncio.Future[bool]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        """Start the background writer on the running loop."""
        self._task.start(self._run)

    def add(self, row: HistoryRow) -> None:
        """Queue a row; returns at once."""
        self._pending.append(row)
        overflow = len(self._pending) - self._queue_max
        if overflow > 0:
            for _ in range(overflow):
                self._pending.popleft()
            log.error("history queue full: dropped %d oldest rows", overflow)
            self._on_result("dropped", overflow)
        self._wake.set()

    async def flush(self) -> bool:
        """Write every queued row now; False if the database refused (rows stay queued)."""
        async with self._lock:
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(self._batch_rows, len(self._pending)))]
                write = asyncio.ensure_future(self._write_batch(batch))
                self._writes.add(write)
                write.add_done_callback(self._writes.discard)
                if not await asyncio.shield(write):  # cancelling us does not cancel the write
                    return False
        return True

    async def _write_batch(self, batch: list[HistoryRow]) -> bool:
        """Write one batch; on failure put it back at the head of the queue."""
        try:
            await anyio.to_thread.run_sync(self._write, batch)
        except Exception as exc:
            self._pending.extendleft(reversed(batch))
            log.error("history write of %d rows failed (will retry): %s", len(batch), exc)
            self._on_result("failed", len(batch))
            return False
        self._on_result("written", len(batch))
        return True

    async def close(self) -> None:
        """Stop the background task and write what is left."""
        self._closed = True
        self._wake.set()
        await self._task.join()
        if self._writes:  # batches whose flush was cancelled: let them land (or come back)
            await asyncio.gather(*self._writes, return_exceptions=True)
        if not await self.flush() and self._pending:
            log.error("history: %d rows could not be written at shutdown", len(self._pending))

    async def _run(self) -> None:
        retry_s = self._interval_s
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                break
            await asyncio.sleep(self._interval_s)
            if await self.flush():
                retry_s = self._interval_s
            else:  # back off, then try again even if no new row arrives
                retry_s = min(5.0, retry_s * 2)
                await asyncio.sleep(retry_s)
                self._wake.set()

    def _write(self, batch: list[HistoryRow]) -> None:
        # Core executemany, not an ORM bulk insert: it runs beside the event loop and holds the GIL.
        with self._engine.begin() as conn:
            conn.execute(ClassificationRecord.__table__.insert(), [r.as_dict() for r in batch])


# -- reading ----------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryQuery:
    """Filters of a history listing.

    Args:
        user: only this user's rows; None for everyone's (admins only — the caller decides).
        model: only this model.
        since / until: ``since <= created_at < until`` (naive UTC).
        cursor: continue after this position (from ``next_cursor``).
        limit: page size.
    """

    user: str | None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: tuple[datetime, str] | None = None
    limit: int = 50


def encode_cursor(created_at: datetime, record_id: str) -> str:
    """An opaque cursor for the position just after (created_at, id)."""
    raw = orjson.dumps([created_at.isoformat(), record_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of ``encode_cursor``.

    Raises:
        BadRequest: not a cursor this server produced.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, record_id = orjson.loads(raw)
        return datetime.fromisoformat(stamp), str(record_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest("invalid cursor; pass the next_cursor of a previous page") from None


def _filters(query: HistoryQuery) -> list[Any]:
    rec = ClassificationRecord
    conds: list[Any] = []
    if query.user is not None:
        conds.append(rec.user == query.user)
    if query.model:
        conds.append(rec.model == query.model)
    if query.since is not None:
        conds.append(rec.created_at >= query.since)
    if query.until is not None:
        conds.append(rec.created_at < query.until)
    if query.cursor is not None:
        stamp, record_id = query.cursor
        conds.append(or_(rec.created_at < stamp, and_(rec.created_at == stamp, rec.id < record_id)))
    return conds


def list_page(engine: Engine, query: HistoryQuery) -> tuple[list[HistoryRow], str | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    rec = ClassificationRecord
    stmt = select(rec).where(*_filters(query)).order_by(rec.created_at.desc(), rec.id.desc()).limit(query.limit + 1)
    with Session(engine) as session:
        rows = [_row(r) for r in session.scalars(stmt)]
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return rows, next_cursor


def get_record(engine: Engine, record_id: str, user: str | None) -> HistoryRow | None:
    """One record by id; None when absent or (for ``user`` not None) someone else's."""
    rec = ClassificationRecord
    stmt = select(rec).where(rec.id == record_id)
    if user is not None:
        stmt = stmt.where(rec.user == user)
    with Session(engine) as session:
        found = session.scalar(stmt)
        return _row(found) if found is not None else None


def _safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (CSV injection): prefix = + - @ tab CR with a quote."""
    if isinstance(value, str) and value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def _csv_record(row: HistoryRow) -> list[Any]:
    top1 = row.predictions[0] if row.predictions else None
    values = [
        row.id,
        row.created_at.isoformat() + "Z",
        row.request_id,
        row.user,
        row.key_id,
        row.model,
        row.version if row.version is not None else "",
        row.image_sha256,
        row.top_k,
        top1.label if top1 else "",
        top1.score if top1 else "",
        orjson.dumps(row.predictions).decode(),  # a dataclass is written as {label, index, score}
        f"{row.latency_ms:.3f}",
        str(row.cached).lower(),
        row.status,
        row.http_status,
        row.error or "",
        row.frames if row.frames is not None else "",
        row.duration_s if row.duration_s is not None else "",
        row.tta or "",
    ]
    return [_safe_cell(v) for v in values]


def csv_lines(engine: Engine, query: HistoryQuery, max_rows: int) -> Iterator[str]:
    """The CSV export (header first), page by page, at most ``max_rows`` records (blocking).

    The first page is read before this returns, so a database failure raises here, while the
    response can still be an error; only later pages are read as the iterator is consumed.
    """
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    header = buf.getvalue()
    first = _csv_page(engine, query, query.cursor, min(_PAGE_ROWS, max_rows), buf, writer)
    return _csv_rest(engine, query, max_rows, header, first, buf, writer)


def _csv_page(
    engine: Engine,
    query: HistoryQuery,
    cursor: tuple[datetime, str] | None,
    limit: int,
    buf: io.StringIO,
    writer: Any,
) -> tuple[str, int, str | None]:
    """One page as CSV text: (text, rows, next cursor)."""
    page_query = HistoryQuery(
        user=query.user, model=query.model, since=query.since, until=query.until, cursor=cursor, limit=limit
    )
    rows, next_cursor = list_page(engine, page_query)
    buf.seek(0)
    buf.truncate()
    for row in rows:
        writer.writerow(_csv_record(row))
    return buf.getvalue(), len(rows), next_cursor


def _csv_rest(
    engine: Engine,
    query: HistoryQuery,
    max_rows: int,
    header: str,
    first: tuple[str, int, str | None],
    buf: io.StringIO,
    writer: Any,
) -> Iterator[str]:
    yield header
    text, sent, next_cursor = first
    while sent:
        yield text
        if next_cursor is None or sent >= max_rows:
            return
        text, count, next_cursor = _csv_page(
            engine, query, decode_cursor(next_cursor), min(_PAGE_ROWS, max_rows - sent), buf, writer
        )
        if not count:
            return
        sent += count
