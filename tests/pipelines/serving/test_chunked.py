"""Batch scoring in chunks: same scores as the whole batch at once, atomic output, bounded drift sample."""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from deep_learning_workflow.datasets.chunked import (
    ChunkedParquetDataset,
    TableChunksDataset,
    TableSource,
)
from deep_learning_workflow.inference.engine import PARITY_ATOL, PARITY_RTOL
from deep_learning_workflow.inference.optimise_batch import coded_inputs
from deep_learning_workflow.model_inputs import to_model_inputs
from deep_learning_workflow.parameters import validate_parameters
from deep_learning_workflow.pipelines.serving.batch_scoring import score_scoring_batch
from deep_learning_workflow.pipelines.serving.chunked import compile_forward
from deep_learning_workflow.pipelines.serving.nodes import (
    export_serving_bundle,
)
from deep_learning_workflow.pipelines.serving.scoring import (
    score_batch,
    validate_scoring_batch,
)


@pytest.fixture
def bundle(keras_model, train, decision_threshold, gate_passed, columns, serving_params):
    return export_serving_bundle(
        keras_model, train, decision_threshold, gate_passed, columns, serving_params
    )


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    """Staged files go to a folder of this test only, so that leftovers can be counted."""
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    return staging


def _params(serving_params: dict, **scoring) -> dict:
    return {**serving_params, "scoring": {"chunk_rows": 64, "drift_sample_rows": 1000, **scoring}}


def _publish(staged, path) -> pd.DataFrame:
    dataset = ChunkedParquetDataset(filepath=str(path))
    dataset.save(staged)
    return dataset.load()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_chunked_scores_equal_the_whole_batch_scored_at_once(
    tmp_path, bundle, new_records, serving_params, suffix
):
    path = tmp_path / f"records{suffix}"
    if suffix == ".csv":
        new_records.to_csv(path, index=False)
    else:
        new_records.to_parquet(path, row_group_size=50)
    source = TableChunksDataset(filepath=str(path)).load()

    staged, sample = score_scoring_batch(source, bundle, _params(serving_params))
    predictions = _publish(staged, tmp_path / "predictions.parquet")

    expected = score_batch(validate_scoring_batch(new_records, bundle), bundle, serving_params)
    assert len(predictions) == staged.rows == len(new_records)
    assert predictions["customer_id"].tolist() == new_records["customer_id"].tolist()
    np.testing.assert_allclose(
        predictions["probability_Yes"],
        expected["probability_Yes"],
        rtol=PARITY_RTOL,
        atol=PARITY_ATOL,
    )
    close_to_threshold = (expected["probability_Yes"] - 0.35).abs() < 1e-4
    assert (predictions["label"] == expected["label"])[~close_to_threshold].all()
    assert (predictions["model_version"] == bundle.model_version).all()
    # 300 rows < drift_sample_rows: the sample is the whole validated batch, in input order.
    pd.testing.assert_frame_equal(sample, validate_scoring_batch(new_records, bundle))


def test_the_service_engine_compiles_the_test_model(bundle):
    forward, chosen = compile_forward(bundle)
    assert chosen == "numpy"


def test_a_dataframe_input_scores_like_a_file_and_numbers_keyless_rows(
    tmp_path, bundle, new_records, serving_params
):
    keyless = bundle.metadata | {"key": None}
    bundle_without_key = type(bundle)(keyless, model=bundle.model)
    staged, _ = score_scoring_batch(
        new_records.drop(columns="customer_id"), bundle_without_key, _params(serving_params)
    )
    predictions = _publish(staged, tmp_path / "predictions.parquet")
    assert predictions["row"].tolist() == list(range(len(new_records)))


def test_drift_sample_is_bounded_seeded_and_uniform(bundle, serving_params):
    from .conftest import make_table

    records = make_table(2000, seed=5, with_target=False)
    params = _params(serving_params, drift_sample_rows=300, chunk_rows=128)
    staged_a, sample_a = score_scoring_batch(records, bundle, params)
    staged_b, sample_b = score_scoring_batch(records, bundle, params)
    assert len(sample_a) == 300
    pd.testing.assert_frame_equal(sample_a, sample_b)
    positions = records.reset_index().merge(sample_a, on="customer_id")["index"]
    assert positions.is_monotonic_increasing
    # Drawn from every part of the table, not only the first chunks.
    assert positions.min() < 400 and positions.max() > 1600
    assert staged_a.rows == 2000


def test_a_bad_chunk_stops_the_run_and_publishes_nothing(
    tmp_path, bundle, new_records, serving_params, private_tempdir
):
    broken = new_records.astype({"tenure": "object"})
    broken.loc[250, "tenure"] = "twelve"
    path = tmp_path / "records.csv"
    broken.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"'tenure'.*rows 192 to 255"):
        score_scoring_batch(TableSource(str(path)), bundle, _params(serving_params))
    assert list(private_tempdir.iterdir()) == []


def test_missing_columns_are_named_before_any_row_is_read(
    tmp_path, bundle, new_records, serving_params
):
    path = tmp_path / "records.parquet"
    new_records.drop(columns="contract").to_parquet(path)
    with pytest.raises(ValueError, match=r"lacks the columns \['contract'\]"):
        score_scoring_batch(TableSource(str(path)), bundle, _params(serving_params))


def test_a_failed_publish_leaves_the_previous_predictions(tmp_path, private_tempdir):
    final = tmp_path / "predictions.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(final)
    dataset = ChunkedParquetDataset(filepath=str(final))
    from deep_learning_workflow.datasets.chunked import StagedParquet

    with pytest.raises(DatasetError, match="nothing was written"):
        dataset.save(StagedParquet(str(private_tempdir / "gone.parquet"), rows=1))
    assert pd.read_parquet(final)["a"].tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.parquet", "staging"]


@pytest.mark.parametrize("chunk_rows", [0, -5, 2.5, "many"])
def test_chunk_rows_must_be_a_positive_integer(chunk_rows):
    with pytest.raises(ValueError, match="serving.scoring.chunk_rows"):
        validate_parameters({"serving": {"scoring": {"chunk_rows": chunk_rows}}})


def test_the_engine_scores_coded_columns_as_plain_columns(bundle, new_records):
    """Unseen categories and missing values included: codes only change how the lookups are done."""
    records = new_records.copy()
    records.loc[::7, "contract"] = "a contract never seen"
    records.loc[::5, "paperless_billing"] = None
    records.loc[::3, "tenure"] = np.nan
    validated = validate_scoring_batch(records, bundle)
    forward, _ = compile_forward(bundle)
    np.testing.assert_allclose(
        forward(coded_inputs(validated, bundle.roles)),
        forward(to_model_inputs(validated, bundle.roles)),
        rtol=1e-6,
        atol=1e-7,
    )
