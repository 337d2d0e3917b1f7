"""Atomic saves: a failed or killed save leaves the previous file (or version) and nothing under the final name."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from kedro.io.core import DatasetError, Version

from deep_learning_workflow.datasets import atomic
from deep_learning_workflow.datasets.optional_json import OptionalJSONDataset

FRAME = pd.DataFrame({"customer_id": ["a", "b", "c"], "tenure": [1.0, 2.5, None]})


class Unserialisable:
    """No file format used here knows how to write it."""


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# (dataset class, file name, good data, data its writer fails on after opening the file)
CASES = {
    "parquet": (atomic.ParquetDataset, "t.parquet", FRAME, pd.DataFrame({"x": [Unserialisable()]})),
    "csv": (atomic.CSVDataset, "t.csv", FRAME, {"not": "a frame"}),
    "json": (atomic.JSONDataset, "t.json", {"a": [1, 2]}, {"a": {1, 2}}),
    "plotly": (
        atomic.PlotlyJSONDataset,
        "p.json",
        go.Figure(go.Bar(y=[1, 2])),
        {"not": "a figure"},
    ),
    "text": (atomic.TextDataset, "t.html", "<p>report</p>", b"bytes, not text"),
    "yaml": (atomic.YAMLDataset, "t.yml", {"a": 1}, {"a": threading.Lock()}),
    "pickle": (atomic.PickleDataset, "t.pkl", {"a": 1}, {"a": lambda: None}),
}


def _same(loaded, expected) -> bool:
    if isinstance(expected, pd.DataFrame):
        return loaded.equals(expected)
    if isinstance(expected, go.Figure):
        return loaded.to_dict() == expected.to_dict()
    return loaded == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_failed_save_leaves_the_previous_file_byte_identical(case, tmp_path):
    cls, name, good, bad = CASES[case]
    dataset = cls(filepath=str(tmp_path / "data" / name), metadata={"kedro-viz": {"layer": "raw"}})
    dataset.save(good)
    before = _tree(tmp_path)
    assert list(before) == [f"data/{name}"]

    with pytest.raises(DatasetError) as failure:
        dataset.save(bad)

    assert (
        "left as it was" in str(failure.value) or case == "pickle"
    )  # pickle raises its own DatasetError
    assert _tree(tmp_path) == before, "the previous file changed, or a partial file was left"
    assert list((tmp_path / "data").iterdir()) == [tmp_path / "data" / name]
    assert _same(dataset.load(), good)
    assert dataset.metadata == {"kedro-viz": {"layer": "raw"}}


def test_the_unserialisable_frame_names_the_column(tmp_path):
    dataset = atomic.ParquetDataset(filepath=str(tmp_path / "t.parquet"))
    dataset.save(FRAME)
    frame = FRAME.assign(tags=[Unserialisable() for _ in range(len(FRAME))])
    with pytest.raises(DatasetError, match=r"(?s)left as it was.*column tags"):
        dataset.save(frame)


def test_a_failed_versioned_save_adds_no_version_folder(tmp_path):
    dataset = atomic.JSONDataset(filepath=str(tmp_path / "best.json"), version=Version(None, None))
    dataset.save({"units": 32})
    before = _tree(tmp_path)
    time.sleep(0.002)  # the next version's timestamp differs
    with pytest.raises(DatasetError, match="left as it was"):
        dataset.save({"units": {32}})
    assert _tree(tmp_path) == before
    assert len(list((tmp_path / "best.json").iterdir())) == 1
    assert dataset.load() == {"units": 32}


def test_a_versioned_save_publishes_a_complete_version_folder(tmp_path):
    dataset = atomic.ParquetDataset(
        filepath=str(tmp_path / "t.parquet"), version=Version(None, None)
    )
    dataset.save(FRAME)
    time.sleep(0.002)
    dataset.save(FRAME.head(1))
    versions = dataset.list_versions(full_path=False)
    assert len(versions) == 2
    assert sorted(p.name for p in (tmp_path / "t.parquet").iterdir()) == sorted(versions)
    assert dataset.load().equals(FRAME.head(1))


def test_the_release_record_is_optional_and_atomic(tmp_path):
    record = OptionalJSONDataset(str(tmp_path / "released" / "release.json"))
    assert record.load() is None
    record.save({"version": 1})
    before = _tree(tmp_path)
    with pytest.raises(DatasetError):
        record.save({"version": {1}})
    assert _tree(tmp_path) == before
    assert record.load() == {"version": 1}


# The child saves a large frame through the dataset; its Parquet writer writes half the bytes, says so, then stalls,
# so the kill lands in the middle of the write every time.
_STALLED_SAVE = textwrap.dedent(
    """
    import io, sys, time
    import numpy as np
    import pandas as pd
    from kedro.io.core import Version
    from deep_learning_workflow.datasets.atomic import ParquetDataset

    real_to_parquet = pd.DataFrame.to_parquet

    def stalled_to_parquet(frame, file, **kwargs):
        buffer = io.BytesIO()
        real_to_parquet(frame, buffer, **kwargs)
        payload = buffer.getvalue()
        file.write(payload[: len(payload) // 2])
        file.flush()
        print("half written", flush=True)
        time.sleep(120)
        file.write(payload[len(payload) // 2 :])

    pd.DataFrame.to_parquet = stalled_to_parquet
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"customer_id": np.arange(300_000), "tenure": rng.normal(size=300_000)})
    version = Version(None, None) if sys.argv[2] == "versioned" else None
    ParquetDataset(filepath=sys.argv[1], version=version).save(frame)
    """
)


def _wait_for_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        process.kill()
        pytest.fail("the saving process never reached the middle of its write")
    return process.stdout.readline()


@pytest.mark.parametrize("versioned", [False, True], ids=["file", "versioned"])
def test_a_save_killed_mid_write_leaves_the_previous_file(versioned, tmp_path):
    target = tmp_path / "train.parquet"
    version = Version(None, None) if versioned else None
    atomic.ParquetDataset(filepath=str(target), version=version).save(FRAME)
    before = _tree(tmp_path)

    process = subprocess.Popen(
        [sys.executable, "-c", _STALLED_SAVE, str(target), "versioned" if versioned else "file"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = _wait_for_line(process, timeout=120)
    assert line.strip() == "half written", process.stderr.read()
    partial = {name: data for name, data in _tree(tmp_path).items() if name not in before}
    assert partial and all(".partial-" in name and data for name, data in partial.items()), partial
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    after = _tree(tmp_path)
    # Nothing changed under the final name; the killed process could only leave its hidden staging file behind.
    assert {name: data for name, data in after.items() if ".partial-" not in name} == before
    reloaded = atomic.ParquetDataset(filepath=str(target), version=version)
    assert reloaded.load().equals(FRAME)
    if versioned:
        assert len(reloaded.list_versions()) == 1
