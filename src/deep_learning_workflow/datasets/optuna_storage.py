"""The Optuna study storage as a Kedro dataset: where the tuning pipeline's trials live.

The storage URL comes from credentials (nodes never read credentials), so the catalog entry names them::

    tuning_storage:
      type: deep_learning_workflow.datasets.optuna_storage.OptunaStorageDataset
      credentials: tuning_storage

and ``conf/<env>/credentials.yml`` gives the URL under ``con``:

- ``sqlite:///data/06_models/optuna/study.db``: the embedded default, one process at a time;
- ``journal:///data/06_models/optuna/study.journal``: an Optuna journal file, several processes on one machine;
- ``postgresql+psycopg2://user:password@host:5432/db``: several machines.

Loading opens the storage (creating the tables or the file) and fails at once, with the password redacted, when it
cannot be reached, so a bad URL stops the run before any trial starts. Trials of a worker that dies are found by
their missing heartbeat, failed, and queued again with the same hyperparameters (Optuna's
``RetryHeartbeatStaleTrialCallback``); journal files get the same heartbeat as the databases.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from deep_learning_workflow.redaction import redact_url, scrub

JOURNAL_SCHEME = "journal:///"
HEARTBEAT_ATTR = "heartbeat"


class StudyLock:
    """A lock shared by the workers of one study; :class:`StudyStorage` makes the right kind for its backend.

    ``acquire`` and ``release`` are idempotent within a process, so a caller can release it at whichever point
    comes first. This base class locks nothing: an in-memory storage has one process.
    """

    def acquire(self) -> None:
        """Block until this process holds the lock."""

    def release(self) -> None:
        """Let the other workers take the lock."""


class _FileLock(StudyLock):
    """``flock`` on a file beside the SQLite database or journal; the kernel releases it when a worker dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: Any = None

    def acquire(self) -> None:
        if self._handle is not None:
            return
        try:
            import fcntl
        except ImportError:  # Windows: no flock; the trial cap may be exceeded by a worker or two.
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._path, "a")  # noqa: SIM115 - held until release()
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        import fcntl

        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None


class _PostgresLock(StudyLock):
    """A PostgreSQL session advisory lock; the server releases it when a worker's connection drops."""

    def __init__(self, url: str, key: int, engine_kwargs: dict[str, Any]) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        kwargs = {k: v for k, v in engine_kwargs.items() if k not in ("pool_size", "max_overflow")}
        self._engine = create_engine(url, poolclass=NullPool, **kwargs)
        self._key = key
        self._connection: Any = None

    def acquire(self) -> None:
        if self._connection is not None:
            return
        from sqlalchemy import text

        connection = self._engine.connect()
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
        connection.commit()
        self._connection = connection

    def release(self) -> None:
        if self._connection is None:
            return
        from sqlalchemy import text

        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            self._connection.commit()
        finally:
            self._connection.close()
            self._connection = None


@dataclass(frozen=True)
class StudyStorage:
    """An opened Optuna storage, what :class:`OptunaStorageDataset` loads.

    Attributes:
        storage: pass it to ``optuna.create_study(storage=...)`` / ``optuna.load_study``.
        location: the URL with its password redacted, for messages.
    """

    storage: Any
    location: str
    _lock_factory: Callable[[str], StudyLock] = field(
        default=lambda study_name: StudyLock(), repr=False
    )

    def lock(self, study_name: str) -> StudyLock:
        """A lock that the workers of ``study_name`` share (see :class:`StudyLock`)."""
        return self._lock_factory(study_name)


def _advisory_key(study_name: str) -> int:
    return int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)


def _lock_path(path: Path, study_name: str) -> Path:
    digest = hashlib.sha256(study_name.encode()).hexdigest()[:12]
    return path.with_name(f"{path.name}.{digest}.lock")


def _journal_storage(
    path: Path,
    heartbeat_interval: int | None,
    grace_period: int | None,
    stale_trial_callback: Callable[[Any, Any], None] | None,
) -> Any:
    import optuna
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        """Optuna's journal storage with the heartbeat its RDB storage has, kept in a trial system attribute."""

        def record_heartbeat(self, trial_id: int) -> None:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, KeyError):
                self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            deadline = time.time() - (grace_period or 2 * (heartbeat_interval or 0))
            running = self.get_all_trials(
                study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
            )
            return [
                trial._trial_id
                for trial in running
                if trial.system_attrs.get(
                    HEARTBEAT_ATTR,
                    trial.datetime_start.timestamp() if trial.datetime_start else time.time(),
                )
                < deadline
            ]

        def get_heartbeat_interval(self) -> int | None:
            return heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, Any], None] | None:
            return stale_trial_callback

    path.parent.mkdir(parents=True, exist_ok=True)
    return HeartbeatJournalStorage(JournalFileBackend(str(path)))


class OptunaStorageDataset(AbstractDataset[None, StudyStorage]):
    """Opens the Optuna storage named by credentials; read-only (trials are written by the study itself).

    Args:
        credentials: ``{"con": URL}``; see the module docstring for the URL forms. Relative paths are relative to
            the project folder.
        heartbeat_interval: seconds between the heartbeats of a running trial; null disables the detection of
            dead workers.
        grace_period: seconds without a heartbeat after which a running trial counts as dead (failed and
            retried); null: twice ``heartbeat_interval``.
        max_retry: how many times a dead worker's trial is queued again; null: without limit.
        engine_kwargs: passed to SQLAlchemy's ``create_engine`` (database URLs only).
        credentials_key: the credentials entry the catalog names, quoted in error messages (Kedro hands the
            dataset the values, not the key).
        metadata: free-form, e.g. kedro-viz's layer.
    """

    def __init__(  # noqa: PLR0913 - keyword arguments mirror the catalog entry's keys
        self,
        *,
        credentials: dict[str, Any] | None = None,
        heartbeat_interval: int | None = 60,
        grace_period: int | None = None,
        max_retry: int | None = 3,
        engine_kwargs: dict[str, Any] | None = None,
        credentials_key: str = "tuning_storage",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        url = (credentials or {}).get("con")
        if not isinstance(url, str) or not url.strip():
            raise DatasetError(
                f"The Optuna storage needs a URL under '{credentials_key}.con' in conf/<env>/credentials.yml, "
                "e.g. sqlite:///data/06_models/optuna/study.db."
            )
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("grace_period", grace_period),
        ):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise DatasetError(
                    f"OptunaStorageDataset's {name} must be a positive whole number of seconds or null, got {value!r}."
                )
        self._url = url.strip()
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._max_retry = max_retry
        self._engine_kwargs = dict(engine_kwargs or {})
        self._credentials_key = credentials_key
        self.metadata = metadata

    @property
    def location(self) -> str:
        """The storage URL with its password redacted."""
        return redact_url(self._url)

    def load(self) -> StudyStorage:
        import warnings

        from optuna.exceptions import ExperimentalWarning

        try:
            with warnings.catch_warnings():
                # The heartbeat is "experimental" in Optuna's terms; it is the documented way to find dead workers.
                warnings.simplefilter("ignore", ExperimentalWarning)
                return self._open()
        except Exception as error:  # noqa: BLE001 - any driver error becomes one clear message
            reason = f"{type(error).__name__}: {scrub(str(error), self._url)}"
        # Raised outside the except block so that the driver's exception, whose text may hold the URL, is not
        # chained to it and printed with the traceback.
        raise self._cannot_open(reason)

    def check_connection(self) -> None:
        """Connect to a database storage once and let go, so that a run fails before its first node when the
        server cannot be reached or refuses the credentials (SQLite and journal files are local: nothing to do).

        Raises:
            DatasetError: as :meth:`load` does, with the password redacted.
        """
        if self._url.startswith(JOURNAL_SCHEME):
            return
        try:
            from sqlalchemy import create_engine
            from sqlalchemy.engine import make_url
            from sqlalchemy.pool import NullPool

            parsed = make_url(self._url)
            if parsed.get_backend_name() == "sqlite":
                return
            pooling = ("pool_size", "max_overflow")
            kwargs = {k: v for k, v in self._engine_kwargs.items() if k not in pooling}
            if parsed.get_backend_name() == "postgresql":
                kwargs["connect_args"] = {"connect_timeout": 10, **kwargs.get("connect_args", {})}
            engine = create_engine(self._url, poolclass=NullPool, **kwargs)
            try:
                with engine.connect():
                    return
            finally:
                engine.dispose()
        except Exception as error:  # noqa: BLE001 - any driver error becomes one clear message
            reason = f"{type(error).__name__}: {scrub(str(error), self._url)}"
        raise self._cannot_open(reason)

    def _cannot_open(self, reason: str) -> DatasetError:
        return DatasetError(
            f"Cannot open the Optuna study storage {self.location} given by '{self._credentials_key}.con' in "
            f"conf/<env>/credentials.yml: {reason}. Check that the server is reachable and that the URL, user and "
            "database are right."
        )

    def _open(self) -> StudyStorage:
        from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

        retry = RetryHeartbeatStaleTrialCallback(max_retry=self._max_retry)
        if self._url.startswith(JOURNAL_SCHEME):
            path = Path(self._url[len(JOURNAL_SCHEME) :])
            storage = _journal_storage(path, self._heartbeat_interval, self._grace_period, retry)
            return StudyStorage(
                storage, self.location, lambda name: _FileLock(_lock_path(path, name))
            )

        from sqlalchemy.engine import make_url

        parsed = make_url(self._url)
        engine_kwargs = dict(self._engine_kwargs)
        if parsed.get_backend_name() == "postgresql":
            engine_kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
        database = parsed.database if parsed.get_backend_name() == "sqlite" else None
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        storage = RDBStorage(
            self._url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=self._heartbeat_interval,
            grace_period=self._grace_period,
            heartbeat_stale_trial_callback=retry,
        )
        if parsed.get_backend_name() == "postgresql":
            url = self._url
            return StudyStorage(
                storage,
                self.location,
                lambda name: _PostgresLock(url, _advisory_key(name), engine_kwargs),
            )
        if database and database != ":memory:":
            return StudyStorage(
                storage, self.location, lambda name: _FileLock(_lock_path(Path(database), name))
            )
        return StudyStorage(storage, self.location)

    def save(self, data: StudyStorage) -> None:
        raise DatasetError(
            "The Optuna storage is read-only in the catalog: trials are written by the study as it runs."
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "heartbeat_interval": self._heartbeat_interval,
            "grace_period": self._grace_period,
            "max_retry": self._max_retry,
        }
