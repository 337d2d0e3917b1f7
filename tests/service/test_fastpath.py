"""Parity: the NumPy fast path returns what the .keras model returns (rtol 1e-5), on real rows with unseen
categories, missing numbers and text; models it cannot compile fall back to tf.function."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.bundle import read_bundle, write_bundle
from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.inference import UnsupportedLayer
from deep_learning_workflow.inference.folded import FirstLayer
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.service.loader import load_version

from .bundles import (
    COVERAGE_ROLES,
    REVIEW_ROLES,
    TELCO_ROLES,
    bundle_metadata,
    raw_records,
    review_frame,
    reviews_with_length,
)

RTOL, ATOL = 1e-5, 1e-7


def fast_path_outputs(version, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(whole batch, one record at a time): the two code paths of the fast path."""
    batch = version.forward(version.validator.validate(records, batch=True).values)
    single = np.vstack(
        [version.forward(version.validator.validate([r], batch=False).values) for r in records]
    )
    return np.asarray(batch, dtype=np.float64), single.astype(np.float64)


def with_unseen(frame: pd.DataFrame, columns: dict[str, str], every: int = 3) -> pd.DataFrame:
    frame = frame.copy()
    for column, value in columns.items():
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[::every], column] = value
    return frame


def check_parity(bundle_path, frame: pd.DataFrame, roles: ColumnRoles) -> np.ndarray:
    bundle = read_bundle(bundle_path)
    expected = predict_probabilities(bundle.model, frame, bundle.roles)
    version = load_version(bundle_path, range_policy="finite", engine="numpy")
    batch, single = fast_path_outputs(version, raw_records(frame, roles))
    np.testing.assert_allclose(batch, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(single, expected, rtol=RTOL, atol=ATOL)
    return expected


def test_telco_one_hot_model_parity(telco_bundle, telco_rows):
    frame = with_unseen(telco_rows, {"payment_method": "Cryptocurrency", "contract": "Ten years"})
    assert frame["total_charges"].isna().sum() >= 5
    expected = check_parity(telco_bundle, frame, TELCO_ROLES)
    assert expected.shape == (len(frame), 2)
    version = load_version(telco_bundle)
    assert version.engine == "numpy"
    assert isinstance(version.forward.steps[0].op, FirstLayer)


def test_telco_embedding_batch_norm_gelu_model_parity(telco_bundle_b, telco_rows):
    frame = with_unseen(telco_rows, {"internet_service": "Satellite", "female": 7}, every=4)
    check_parity(telco_bundle_b, frame, TELCO_ROLES)


def test_text_model_parity(review_bundle):
    frame = review_frame(300, seed=11)
    frame.loc[frame.index[:3], "review"] = [
        "",
        "WOW!!! Zyxqv blorf, totally... UNSEEN words?",
        "  \tspaces\n only ",
    ]
    frame = with_unseen(frame, {"product_id": "B0NEVERSEEN"}, every=5)
    check_parity(review_bundle, frame, REVIEW_ROLES)


def test_coverage_model_parity_with_masked_empty_text(coverage_bundle):
    frame = reviews_with_length(200, seed=22)
    frame.loc[frame.index[0], "review"] = ""  # every step masked: Keras itself answers 0 / 0 = NaN
    frame.loc[frame.index[1], "review_length"] = np.nan
    frame.loc[frame.index[2], "review_length"] = 100.0  # in the IntegerLookup vocabulary
    frame = with_unseen(frame, {"product_id": "B0NEVERSEEN"}, every=4)
    bundle = read_bundle(coverage_bundle)
    expected = predict_probabilities(bundle.model, frame, bundle.roles)
    version = load_version(coverage_bundle, range_policy="finite", engine="numpy")
    batch, single = fast_path_outputs(version, raw_records(frame, COVERAGE_ROLES))
    assert np.isnan(expected[0]).all() and np.isfinite(expected[1:]).all()
    np.testing.assert_allclose(batch, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(single, expected, rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def unsupported_bundle(bundle_dir, telco_train):
    import keras

    from .bundles import train_model

    model = train_model(telco_train, TELCO_ROLES, seed=4)
    # A layer kind outside the model contract: the fast path cannot compile it.
    hidden = keras.layers.LayerNormalization(name="layer_norm")(model.get_layer("hidden_2").output)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities_2")(hidden)
    wrapped = keras.Model(model.inputs, outputs)
    path = bundle_dir / "unsupported"
    write_bundle(path, wrapped, bundle_metadata(wrapped, telco_train, TELCO_ROLES))
    return path


def test_unsupported_layer_falls_back_to_tf_function(unsupported_bundle, telco_rows):
    with pytest.raises(UnsupportedLayer, match="LayerNormalization"):
        load_version(unsupported_bundle, engine="numpy")
    version = load_version(unsupported_bundle)
    assert version.engine == "tf.function"
    bundle = read_bundle(unsupported_bundle)
    expected = predict_probabilities(bundle.model, telco_rows, bundle.roles)
    batch, single = fast_path_outputs(version, raw_records(telco_rows, TELCO_ROLES))
    np.testing.assert_allclose(batch, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(single, expected, rtol=RTOL, atol=ATOL)


def test_request_time_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import deep_learning_workflow.service.app, deep_learning_workflow.inference.forward\n"
        "import deep_learning_workflow.inference, deep_learning_workflow.inference.optimise\n"
        "import deep_learning_workflow.service.validation, deep_learning_workflow.service.scoring\n"
        "import deep_learning_workflow.service.prediction_log, deep_learning_workflow.service.__main__\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""
