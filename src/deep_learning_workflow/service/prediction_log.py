"""The request/prediction log writer: one row per answered request (and one per shadow scoring), written by a
background thread in batches (the table: :mod:`.log_table`).

A request hands the writer one entry: its body as received and the arrays of its scores, with no per-record work.
The writer's thread turns entries into rows (the records' JSON is the body itself), scores them with the shadow
version when there is one, feeds the live drift window, and inserts each batch in one transaction of multi-row
INSERTs (:class:`~.log_rows.InsertStatements`).
The queue is bounded in records: a request that finds it full waits for room (:meth:`PredictionLogWriter.room`),
so overload slows answers down instead of losing rows. Rows that truly cannot be written (the database refuses
them, or stays down) are counted in ``dlw_prediction_log_dropped_total`` and reported as errors.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from deep_learning_workflow.redaction import redact_url, scrub

from .log_rows import InsertStatements, LogEntry, RowBuilder
from .log_table import (
    check_layout,
    create_log_engine,
    encode_record,
    encode_records,
    max_parameters,
    prediction_table,
    read_logged_records,
)
from .metrics import ServiceMetrics
from .scoring import ModelVersion

__all__ = [
    "LogEntry",
    "PredictionLogWriter",
    "encode_record",
    "encode_records",
    "read_logged_records",
]

logger = logging.getLogger(__name__)
SLICE_RECORDS = 20_000
"""Records turned into rows and inserted per transaction (the event loop gets the GIL back in between)."""
YIELD_EVERY = 256
"""Records turned into rows between two hand-overs of the GIL to the event loop."""


class PredictionLogWriter:
    """The background writer (and shadow scorer).

    Requests append to a deque (atomic, no lock); the thread drains it every ``flush_seconds``, or at once when
    half the queue is taken.

    Args:
        url: SQLAlchemy URL, or None to keep no log (the shadow and the drift gauges still run).
        table: table name.
        metrics: the service's metrics.
        queue_size: records waiting beyond this make requests wait for room (:meth:`room`).
        flush_seconds: how often pending entries are processed and written.
        shadow: the shadow version, if any.
        on_records: called with the served raw records of each entry (the live drift monitor).
        on_idle: called after each drain (the drift monitor's refresh).
    """

    def __init__(
        self,
        url: str | None,
        table: str,
        metrics: ServiceMetrics,
        queue_size: int = 50_000,
        flush_seconds: float = 0.5,
        shadow: ModelVersion | None = None,
        on_records: Callable[[Any], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.table_name = table
        self.metrics = metrics
        self.queue_size = queue_size
        self.flush_seconds = flush_seconds
        self.shadow = shadow
        self.on_records = on_records
        self.on_idle = on_idle
        self._pending: deque[LogEntry] = deque()
        # Records queued (counted by the submitting thread) and taken (by the writer): each written by one thread.
        self._queued = 0
        self._taken = 0
        self._wake = threading.Event()
        self._stopping = False
        self._drained = threading.Condition()
        self._drains = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._engine: sa.Engine | None = None
        self._last_failure = 0.0
        self._rows = RowBuilder(sqlite=False)

    def start(self) -> None:
        if self.url:
            self._engine = engine = create_log_engine(self.url)
            metadata = sa.MetaData()
            prediction_table(metadata, self.table_name)
            try:
                with engine.begin() as connection:
                    check_layout(connection, self.table_name, self.url)
                try:
                    metadata.create_all(engine)
                except sa.exc.SQLAlchemyError:
                    # Another worker of the service may have created the table between the check and the create.
                    with engine.begin() as connection:
                        if not sa.inspect(connection).has_table(self.table_name):
                            raise
            except sa.exc.SQLAlchemyError as error:
                reason = str(getattr(error, "orig", None) or error).strip().splitlines()
                # Not chained: the driver's text is in the message, its password redacted.
                raise RuntimeError(
                    f"Cannot open the prediction log {redact_url(self.url)} (log_url): "
                    f"{scrub(reason[0] if reason else type(error).__name__, self.url)}. Check that the server is "
                    "reachable and the URL's user, password and database, or set log_url to null."
                ) from None
            self._statements = InsertStatements(engine, self.table_name, max_parameters(engine))
            self._rows = RowBuilder(sqlite=engine.dialect.name == "sqlite")
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Records queued and not yet taken by the writer."""
        return self._queued - self._taken

    def submit(self, entry: LogEntry) -> bool:
        """Queue an entry without waiting; a full queue drops it (counted per record, and reported)."""
        count = len(entry.records)
        waiting = self._queued - self._taken
        if waiting >= self.queue_size:
            self._dropped(count, OverflowError(f"{waiting} records are waiting"))
            return False
        self._pending.append(entry)
        self._queued += count
        if waiting + count >= self.queue_size // 2 and not self._wake.is_set():
            self._wake.set()  # half full: write now rather than at the next tick
        return True

    async def room(self, timeout: float) -> bool:
        """Wait (without blocking the event loop) until the queue has room; False when ``timeout`` passed first."""
        if self._queued - self._taken < self.queue_size:
            return True
        self._wake.set()
        deadline = time.monotonic() + timeout
        while self._queued - self._taken >= self.queue_size:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            await asyncio.sleep(0.002)
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is processed and written (True) or the timeout passes (False)."""
        if not self._thread.is_alive():
            return False
        with self._drained:
            # The drain running now may have started before the caller's entries arrived: wait for the next one.
            target = self._drains + 2
            deadline = time.monotonic() + timeout
            while self._drains < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._drained.wait(min(remaining, 0.05))
            return True

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                left = sum(len(entry.records) for entry in list(self._pending))
                self._last_failure = 0.0
                self._dropped(left, TimeoutError(f"still writing after {timeout:g} s"))
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stopping
            # What is queued now, in slices; what arrives meanwhile waits for the next tick (or, once half the
            # queue is taken, the next wake-up): a writer that chased every new entry would hold the GIL
            # against the event loop for the many small transactions it then wrote.
            entries = len(self._pending)
            while entries > 0:
                try:
                    entries -= self._drain(entries)
                except Exception:  # the writer must outlive any bad entry
                    logger.exception("Could not log a batch of requests")
                    break
                time.sleep(0)  # let the event loop in between slices
            self.metrics.log_queue.set(self.waiting)
            if self.on_idle is not None:
                self.on_idle()
            with self._drained:
                self._drains += 1
                self._drained.notify_all()
            if stopping:  # on the way out, everything queued is written
                if not self._pending:
                    return
                self._wake.set()
            elif self.waiting >= self.queue_size // 2:
                self._wake.set()

    def _take(self, limit: int) -> list[LogEntry]:
        entries: list[LogEntry] = []
        records = 0
        while records < SLICE_RECORDS and len(entries) < limit:
            try:
                entry = self._pending.popleft()
            except IndexError:
                break
            entries.append(entry)
            records += len(entry.records)
        self._taken += records
        return entries

    def _drain(self, limit: int) -> int:
        """Write up to ``limit`` queued entries (one slice); returns how many were taken."""
        entries = self._take(limit)
        rows: list[tuple[Any, ...]] = []
        counts: list[int] = []
        texts: list[str | None] = []
        since_yield = 0
        for index, entry in enumerate(entries):
            try:
                if self.on_records is not None:
                    self.on_records(entry.records)
                text = self._rows.records_text(entry) if self._engine is not None else None
                if text is not None:
                    rows.append(self._rows.served(entry, text))
                    counts.append(len(entry.records))
                texts.append(text)
            except (
                Exception
            ) as error:  # an entry that cannot become a row costs its own records only
                self._dropped(len(entry.records), error)
                texts.append(None)
            since_yield += len(entry.records)
            if self.shadow is None:
                # Free the parsed records one entry at a time: a slice's records freed at once (some 300,000
                # objects for 20 batches of 1,000) hold the GIL in one uninterruptible call.
                entries[index] = None
                del entry
            if since_yield >= YIELD_EVERY:
                # Hand the GIL to the event loop now and then: it would otherwise wait for the switch interval.
                since_yield = 0
                time.sleep(0)
        if self.shadow is not None:
            try:
                shadow_rows = self._rows.shadow(self.shadow, entries, texts, self.metrics)
                rows += [row for row, _ in shadow_rows]
                counts += [count for _, count in shadow_rows]
            except Exception:  # the served rows are written whatever the shadow does
                logger.exception("The shadow could not score %d requests", len(entries))
        self._write(rows, counts)
        return len(entries) or limit

    def _write(self, rows: list[tuple[Any, ...]], counts: list[int]) -> None:
        """Insert the rows in one transaction; if that fails, row by row, so one bad row costs only itself."""
        if not rows or self._engine is None:
            return
        try:
            self._insert(rows, sum(counts))
            return
        except Exception as error:  # a bad row or a database outage must not take the service down
            failure = error
        written = failed = lost = 0
        for row, count in zip(rows, counts, strict=True):
            # Ten failures in a row and nothing written: the database is down, not a row bad.
            if failed >= 10 and not written:
                lost += count
                continue
            try:
                self._insert([row], count)
                written += 1
            except Exception as error:
                failed += 1
                lost += count
                failure = error
        self._dropped(lost, failure)

    def _insert(self, rows: list[tuple[Any, ...]], records: int) -> None:
        with self._engine.begin() as connection:
            self._statements.execute(connection, rows)
        self.metrics.log_written.inc(records)

    def _dropped(self, count: int, error: BaseException) -> None:
        """Count records that could not be logged, and say so (at most once a minute per run of failures)."""
        if not count:
            return
        self.metrics.log_dropped.inc(count)
        now = time.monotonic()
        if now - self._last_failure > 60:
            logger.error(
                "Could not write %d records to the prediction log (counted in "
                "dlw_prediction_log_dropped_total): %s",
                count,
                scrub(str(error), self.url or ""),
            )
            self._last_failure = now
