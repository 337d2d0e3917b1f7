"""One writer per output: a run locks the files it will write, so two runs in one project folder cannot mix them.

Each file output of the run gets a lock file under ``.run-locks/`` in the project folder (named by a digest of the output's path),
held with ``flock`` for the whole run and holding the owner's pid, start time and command. The operating system
lets go of a ``flock`` when its process dies, however it dies: a lock left by a killed run is free, and the next
run takes it over (its record says whose it was). A second run that needs an output held by a live run stops at
once naming that run, or waits for it, as ``conf/<env>/run_lock.yml`` says. Runs writing different files (a
tuning worker adds trials to a shared study and writes no file) do not wait for each other.

With the outputs locked, hidden ``.partial-*`` staging files a killed save left beside them
(:mod:`deep_learning_workflow.datasets.atomic`) are removed when they are older than this process.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deep_learning_workflow.processes import current_process, describe, is_alive

logger = logging.getLogger(__name__)

LOCK_FOLDER = Path(".run-locks")
STAGING_MARKER = ".partial-"
SAY_EVERY_SECONDS = 10.0


class RunLockSettings(BaseModel):
    """``conf/<env>/run_lock.yml``."""

    model_config = ConfigDict(extra="forbid")

    when_busy: Literal["stop", "wait"] = Field(
        "stop", description="stop: fail at once, naming the running process; wait: queue behind it"
    )
    wait_seconds: float = Field(3600.0, gt=0, description="With wait: give up after this long")


class RunLockError(RuntimeError):
    """Another live run holds an output this run would write."""


@dataclass
class RunLock:
    """The locks of one run's file outputs.

    Args:
        project: the project folder (the lock files live in its ``.run-locks``).
        outputs: dataset name -> local path of each file the run writes.
        settings: what to do when another run holds one of them.
        sleep: how to wait between attempts.
    """

    project: Path
    outputs: Mapping[str, Path]
    settings: RunLockSettings = field(default_factory=RunLockSettings)
    sleep: Callable[[float], None] = time.sleep
    _held: list[IO[str]] = field(default_factory=list, init=False)
    me: dict[str, Any] = field(default_factory=current_process, init=False)

    def _lock_file(self, path: Path) -> Path:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:20]
        return self.project / LOCK_FOLDER / f"{digest}.lock"

    def acquire(self) -> list[dict[str, Any]]:
        """Lock every output, waiting as configured.

        Returns:
            The records of killed runs whose locks were taken over.

        Raises:
            RunLockError: naming the live run that holds an output (at once, or after ``wait_seconds``).
        """
        start = time.monotonic()
        said = start
        while True:
            busy = self._try_all()
            if busy is None:
                return self._take_over()
            holder, dataset = busy
            waited = time.monotonic() - start
            if self.settings.when_busy == "stop" or waited >= self.settings.wait_seconds:
                raise RunLockError(self._busy_message(holder, dataset, waited))
            if time.monotonic() - said >= SAY_EVERY_SECONDS or waited == 0:
                logger.warning(
                    "Waiting for the run %s, which writes '%s' (waited %.0f s of %.0f s).",
                    describe(holder),
                    dataset,
                    waited,
                    self.settings.wait_seconds,
                )
                said = time.monotonic()
            self.sleep(1.0)

    def _busy_message(self, holder: dict[str, Any], dataset: str, waited: float) -> str:
        others = len(self.outputs) - 1
        wait = f" after waiting {waited:.0f} s" if waited else ""
        return (
            f"Another run in this project folder is writing the outputs of this one{wait}: {describe(holder)}. "
            f"It holds '{dataset}' ({self.outputs[dataset]})"
            + (f" among the {others + 1} outputs of this run" if others else "")
            + ". Let it finish or stop it (kill "
            f"{holder.get('pid')}), or set when_busy: wait in conf/<env>/run_lock.yml to queue behind it."
        )

    def _try_all(self) -> tuple[dict[str, Any], str] | None:
        """Lock every output without blocking; on the first one held by another run, let go of all."""
        self.release()
        folder = self.project / LOCK_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        for dataset, path in sorted(self.outputs.items(), key=lambda item: str(item[1])):
            handle = self._lock_file(path).open("a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _record(handle) or {"pid": "unknown", "command": "a starting run"}
                handle.close()
                self.release()
                return holder, dataset
            self._held.append(handle)
        return None

    def _take_over(self) -> list[dict[str, Any]]:
        """Write this run's record into every lock; the records of dead runs found there."""
        dead: dict[tuple[Any, Any], dict[str, Any]] = {}
        text = json.dumps(self.me)
        for handle in self._held:
            previous = _record(handle)
            if previous and previous.get("pid") != self.me["pid"] and not is_alive(previous):
                dead[(previous.get("pid"), previous.get("started"))] = previous
            handle.seek(0)
            handle.truncate()
            handle.write(text)
            handle.flush()
        for record in dead.values():
            logger.warning("Took over the outputs of a run that is gone: %s.", describe(record))
        return list(dead.values())

    def release(self) -> None:
        """Let go of every lock this run holds (their files stay, empty)."""
        for handle in self._held:
            try:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                handle.close()
        self._held = []

    def remove_staging_leftovers(self) -> list[Path]:
        """Remove the ``.partial-*`` staging files of the locked outputs older than this process."""
        removed = []
        for path in self.outputs.values():
            candidates = list(path.parent.glob(f".{path.stem}{STAGING_MARKER}*"))
            if path.is_dir():  # a versioned dataset: <filepath>/.partial-<hex>/<version>/
                candidates += path.glob(f"{STAGING_MARKER}*")
            for candidate in candidates:
                if candidate.lstat().st_mtime < self.me["started"]:
                    if candidate.is_dir():
                        shutil.rmtree(candidate, ignore_errors=True)
                    else:
                        candidate.unlink(missing_ok=True)
                    removed.append(candidate)
        if removed:
            logger.info(
                "Removed %d staging leftover(s) of killed saves: %s",
                len(removed),
                ", ".join(str(path) for path in removed[:5]),
            )
        return removed


def _record(handle: IO[str]) -> dict[str, Any] | None:
    handle.seek(0)
    try:
        record = json.loads(handle.read() or "null")
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
