"""Batch scoring on dask.distributed: a LocalCluster of two worker processes gives the in-process scores; an
unreachable scheduler stops the run before any node; a worker killed mid-scoring fails the run, publishing nothing."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time

import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro.pipeline import Pipeline

from deep_learning_workflow.datasets.chunked import ChunkedParquetDataset, TableSource
from deep_learning_workflow.datasets.dask_cluster import (
    LOCAL_CONFIG,
    DaskCluster,
    DaskClusterDataset,
)
from deep_learning_workflow.hooks import CheckConnectionsHook
from deep_learning_workflow.pipelines.serving import distributed
from deep_learning_workflow.pipelines.serving.batch_scoring import score_scoring_batch
from deep_learning_workflow.pipelines.serving.nodes import export_serving_bundle

from .conftest import make_table

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


@pytest.fixture
def bundle(keras_model, train, decision_threshold, gate_passed, columns, serving_params):
    return export_serving_bundle(
        keras_model, train, decision_threshold, gate_passed, columns, serving_params
    )


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    return staging


def _serving(serving_params: dict, engine: str, **scoring) -> dict:
    return {
        **serving_params,
        "scoring": {"chunk_rows": 100, "drift_sample_rows": 5000, "engine": engine, **scoring},
    }


def _publish(staged, path) -> pd.DataFrame:
    dataset = ChunkedParquetDataset(filepath=str(path))
    dataset.save(staged)
    return dataset.load()


def test_two_workers_give_the_in_process_scores(tmp_path, bundle, serving_params):
    records = make_table(1500, seed=7, with_target=False)  # 12 files of 125 rows
    folder = tmp_path / "records"
    folder.mkdir()
    for part in range(12):  # a partitioned Parquet dataset: part-2 comes before part-10
        records.iloc[part * 125 : (part + 1) * 125].to_parquet(folder / f"part-{part}.parquet")
    source = TableSource(str(folder))

    local, local_sample = score_scoring_batch(source, bundle, _serving(serving_params, "local"))
    on_dask, dask_sample = score_scoring_batch(
        source, bundle, _serving(serving_params, "dask"), DaskCluster(n_workers=2)
    )

    expected = _publish(local, tmp_path / "local.parquet")
    actual = _publish(on_dask, tmp_path / "dask.parquet")
    assert actual["customer_id"].tolist() == records["customer_id"].tolist()
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-12)
    # Below drift_sample_rows both samples are the whole validated table, in input order (dask reads text as
    # pandas strings with NA, the local path with NaN).
    pd.testing.assert_frame_equal(dask_sample, local_sample, check_dtype=False)


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("tcp://127.0.0.1:9", "tcp://127.0.0.1:9"),
        ("tcp://scorer:s3cret@127.0.0.1:9", "127.0.0.1:9"),
    ],
)
def test_an_unreachable_scheduler_stops_the_run_before_any_node_without_its_password(
    address, shown
):
    dataset = DaskClusterDataset(credentials={"address": address}, connect_timeout=2)

    class Catalog(dict):
        """What the hook reads of a DataCatalog: membership and get."""

    with pytest.raises(DatasetError, match="Cannot reach the Dask scheduler") as raised:
        CheckConnectionsHook().before_pipeline_run(
            {}, _pipeline_reading("dask_cluster"), Catalog(dask_cluster=dataset)
        )
    message = str(raised.value)
    assert shown in message and "s3cret" not in message


def _pipeline_reading(name: str) -> Pipeline:
    from kedro.pipeline import node, pipeline

    return pipeline([node(lambda cluster: None, inputs=name, outputs=None, name="uses_cluster")])


def test_a_worker_killed_mid_scoring_fails_the_run_and_publishes_nothing(
    tmp_path, bundle, serving_params, monkeypatch, private_tempdir
):
    import dask
    from distributed import Client, LocalCluster

    compile_forward = distributed.compile_forward

    def slow_forward(serving_bundle):
        forward, chosen = compile_forward(serving_bundle)

        class Slow:  # defined here, so that it is pickled by value to the workers
            def __call__(self, columns):
                time.sleep(0.5)
                return forward(columns)

        return Slow(), chosen

    monkeypatch.setattr(distributed, "compile_forward", slow_forward)
    records = make_table(4000, seed=8, with_target=False)
    path = tmp_path / "records.parquet"
    records.to_parquet(path, row_group_size=200)
    final = tmp_path / "predictions.parquet"
    outcome: dict = {}

    with (
        dask.config.set(LOCAL_CONFIG),
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as observer,
    ):

        def run() -> None:
            try:
                staged, _ = score_scoring_batch(
                    TableSource(str(path)),
                    bundle,
                    _serving(serving_params, "dask", chunk_rows=50),
                    DaskCluster(address=cluster.scheduler_address),
                )
                _publish(staged, final)
            except BaseException as error:  # noqa: BLE001 - handed to the test thread
                outcome["error"] = error

        scoring = threading.Thread(target=run)
        scoring.start()
        deadline = time.monotonic() + 120
        while not any(observer.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(observer.processing().values()), "scoring never started"
        busy = next(worker for worker, tasks in observer.processing().items() if tasks)
        os.kill(observer.run(os.getpid, workers=[busy])[busy], signal.SIGKILL)
        scoring.join(timeout=300)

    assert isinstance(outcome.get("error"), ValueError)
    assert "worker" in str(outcome["error"]) and "nothing was published" in str(outcome["error"])
    assert not final.exists()
    assert not [p for p in private_tempdir.iterdir() if p.name.startswith("predictions.partial-")]


def test_the_scoring_run_on_dask_writes_predictions_and_the_drift_report(
    tmp_path, bundle, new_records, serving_params
):
    """``kedro run --pipelines serving --tags scoring --params serving.scoring.engine=dask``, shrunk."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner
    from kedro_datasets.json import JSONDataset

    from deep_learning_workflow.bundle import ServingBundleDataset
    from deep_learning_workflow.datasets.chunked import TableChunksDataset
    from deep_learning_workflow.pipelines.serving import create_pipeline

    ServingBundleDataset(path=str(tmp_path / "bundle")).save(bundle)
    path = tmp_path / "records.parquet"
    new_records.to_parquet(path, row_group_size=100)
    catalog = DataCatalog(
        {
            "scoring_batch": TableChunksDataset(filepath=str(path)),
            "dask_cluster": DaskClusterDataset(n_workers=2),
            "serving_bundle": ServingBundleDataset(path=str(tmp_path / "bundle")),
            "params:serving": MemoryDataset(_serving(serving_params, "dask")),
            "batch_predictions": ChunkedParquetDataset(
                filepath=str(tmp_path / "predictions.parquet")
            ),
            "drift_report": JSONDataset(filepath=str(tmp_path / "drift_report.json")),
            "drift_scores_plot": MemoryDataset(),
            "drift_distributions_plot": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline().only_nodes_with_tags("scoring"), catalog)
    predictions = catalog.load("batch_predictions")
    assert predictions["customer_id"].tolist() == new_records["customer_id"].tolist()
    assert catalog.load("drift_report")["rows"] == len(new_records)
