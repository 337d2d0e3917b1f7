"""Two runs in one project folder: the second stops at once naming the first, or waits for it; a killed run's lock
is taken over; staging leftovers of killed saves are removed; MLflow runs of killed processes are marked KILLED.

The holders are real processes: a Python process holding the locks of the data_acquisition outputs, killed with
SIGKILL where the test says so, and real ``kedro run`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deep_learning_workflow.run_lock import LOCK_FOLDER, RunLock, RunLockError, RunLockSettings

from .conftest import run_kedro

HOLDER = """
import sys, time
from pathlib import Path
from deep_learning_workflow.run_lock import RunLock
project, outputs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
lock = RunLock(project, {{path.name: path for path in outputs}})
lock.acquire()
print("locked", flush=True)
time.sleep({seconds})
lock.release()
"""


def start_holder(project: Path, outputs: list[Path], seconds: float = 600) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(seconds=seconds), str(project), *map(str, outputs)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_a_second_process_stops_at_once_naming_the_first(tmp_path):
    outputs = [tmp_path / "data" / "table.parquet", tmp_path / "data" / "report.json"]
    holder = start_holder(tmp_path, outputs)
    try:
        started = time.monotonic()
        with pytest.raises(RunLockError) as error:
            RunLock(tmp_path, {"report": outputs[1]}).acquire()
        assert time.monotonic() - started < 5
    finally:
        kill(holder)
    message = str(error.value)
    assert f"pid {holder.pid}" in message
    assert "started 20" in message  # the holder's start time, ISO 8601
    assert "`python -c" in message or "-c" in message  # its command line
    assert "'report'" in message and "when_busy: wait" in message


def test_outputs_of_another_run_do_not_block(tmp_path):
    holder = start_holder(tmp_path, [tmp_path / "a.json"])
    try:
        lock = RunLock(tmp_path, {"b": tmp_path / "b.json"})
        assert lock.acquire() == []
        lock.release()
    finally:
        kill(holder)


def test_a_waiting_run_goes_on_when_the_first_ends(tmp_path):
    output = tmp_path / "model.keras"
    holder = start_holder(tmp_path, [output], seconds=3)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    lock = RunLock(tmp_path, {"model": output}, RunLockSettings(when_busy="wait"), sleep=sleep)
    assert lock.acquire() == []  # the holder let go normally: nothing to take over
    lock.release()
    holder.wait(timeout=30)
    assert waits  # it did wait


def test_a_killed_run_leaves_a_lock_that_is_taken_over(tmp_path):
    output = tmp_path / "data" / "table.parquet"
    holder = start_holder(tmp_path, [output])
    kill(holder)

    lock = RunLock(tmp_path, {"table": output})
    taken_over = lock.acquire()
    try:
        assert [record["pid"] for record in taken_over] == [holder.pid]
        records = [json.loads(path.read_text()) for path in (tmp_path / LOCK_FOLDER).iterdir()]
        assert [record["pid"] for record in records] == [os.getpid()]
    finally:
        lock.release()


def test_staging_leftovers_older_than_the_run_are_removed(tmp_path):
    output = tmp_path / "clean_table.parquet"
    versioned = tmp_path / "model.keras"
    old = [tmp_path / ".clean_table.partial-0123abcd.parquet", versioned / ".partial-4567ef01"]
    old[0].write_text("half")
    (old[1] / "2026-01-01T00.00.00.000Z").mkdir(parents=True)
    for path in old:
        os.utime(path, (1_000_000, 1_000_000))
    lock = RunLock(tmp_path, {"clean_table": output, "model": versioned})
    lock.acquire()
    newer = tmp_path / ".clean_table.partial-89abcdef.parquet"
    newer.write_text("being written")  # e.g. by this run itself
    newer_time = lock.me["started"] + 1
    os.utime(newer, (newer_time, newer_time))

    removed = lock.remove_staging_leftovers()
    lock.release()

    assert sorted(removed) == sorted(old)
    assert not any(path.exists() for path in old)
    assert newer.exists()


def mlflow_runs(project: Path) -> list:
    import mlflow

    client = mlflow.tracking.MlflowClient(
        f"sqlite:///{project / 'mlruns' / 'test_env' / 'mlflow.db'}"
    )
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return client.search_runs(experiments, order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_two_kedro_runs_in_one_folder(project_copy):
    """A real run holds the acquisition outputs; a second real run stops at once naming it. Once the first is
    killed, a third run takes its lock over, marks its MLflow run KILLED and records the git state."""
    # The first run is held inside its first node by a web API that accepts the connection and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/never"
    (project_copy / "conf" / "test" / "catalog_hold.yml").write_text(
        "api_source:\n"
        "  type: deep_learning_workflow.datasets.web_api.WebAPIDataset\n"
        f"  url: {url}\n"
        "  http: {timeout_seconds: 600, max_retries: 0}\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--env", "test", "--pipelines", "data_acquisition"],
        cwd=project_copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            locks = list((project_copy / LOCK_FOLDER).glob("*.lock"))
            if locks and all(path.read_text() for path in locks):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the first run never took its locks")
        # Read MLflow's store only once the first run has made it (two processes creating it would clash).
        log = project_copy / "info.log"
        while not (log.exists() and "has started" in log.read_text(errors="replace")):
            assert time.monotonic() < deadline, "the first run never started its MLflow run"
            time.sleep(0.5)
        assert [run.info.status for run in mlflow_runs(project_copy)] == ["RUNNING"]

        second = run_kedro(project_copy, "run", "--env", "test", "--pipelines", "data_acquisition")
        output = " ".join((second.stdout + second.stderr).split())
        assert second.returncode != 0
        assert f"pid {first.pid}" in output, output[-2000:]
        assert "is writing the outputs of this one" in output
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        silent.close()
        (project_copy / "conf" / "test" / "catalog_hold.yml").unlink()

    third = run_kedro(project_copy, "run", "--env", "test", "--pipelines", "data_acquisition")

    assert third.returncode == 0, third.stderr[-3000:]
    runs = mlflow_runs(project_copy)
    statuses = [run.info.status for run in runs]
    assert statuses[0] == "KILLED" and statuses[-1] == "FINISHED", statuses
    assert runs[0].data.tags["process.pid"] == str(first.pid)
    assert runs[-1].data.tags[
        "git_commit"
    ]  # a commit, or "no git" for a copy outside the repository
    assert (project_copy / "data" / "08_reporting" / "acquisition_report.json").exists()
