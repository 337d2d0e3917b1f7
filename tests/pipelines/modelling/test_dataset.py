"""The Keras model dataset: versioned, atomic, safe_mode, custom layers registered in any process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from kedro.io.core import DatasetError, Version

from deep_learning_workflow.datasets import KerasModelDataset, load_keras_model
from deep_learning_workflow.model_inputs import predict_probabilities

from .conftest import make_table


def _records():
    """Rows the model never saw: an unseen contract, a missing tenure, a missing category."""
    records = make_table(6, seed=8)
    records.loc[0, "contract"] = "Three year"
    records.loc[1, "tenure"] = np.nan
    records.loc[2, "monthly_charges"] = np.nan
    records.loc[3, "paperless_billing"] = np.nan
    return records


def test_save_then_load_predicts_like_the_trained_model(trained, tmp_path):
    dataset = KerasModelDataset(filepath=str(tmp_path / "model.keras"), version=Version(None, None))
    dataset.save(trained.model)
    saved = list((tmp_path / "model.keras").glob("*/model.keras"))
    assert len(saved) == 1 and saved[0].is_file()
    assert list(tmp_path.rglob("*partial*")) == []
    loaded = KerasModelDataset(
        filepath=str(tmp_path / "model.keras"), version=Version(None, None)
    ).load()
    records = _records()
    expected = predict_probabilities(trained.model, records, trained.roles)
    np.testing.assert_allclose(
        predict_probabilities(loaded, records, trained.roles), expected, atol=1e-6
    )
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(
        predict_probabilities(load_keras_model(str(saved[0])), records, trained.roles),
        expected,
        atol=1e-6,
    )


def test_a_failed_save_leaves_no_file(tmp_path):
    dataset = KerasModelDataset(filepath=str(tmp_path / "model.keras"), version=Version(None, None))
    with pytest.raises(DatasetError):
        dataset.save("not a model")
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []
    assert not dataset.exists()


def test_only_keras_files_are_accepted(tmp_path):
    with pytest.raises(DatasetError, match=r"\.keras"):
        KerasModelDataset(filepath=str(tmp_path / "model.h5"))


def test_loading_is_safe_mode_so_a_lambda_layer_is_refused(tmp_path):
    import keras

    inputs = keras.Input(shape=(1,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    dataset = KerasModelDataset(filepath=str(tmp_path / "lambda.keras"))
    dataset.save(model)
    with pytest.raises(DatasetError, match="(?i)unsafe|safe_mode"):
        dataset.load()


@pytest.mark.slow
def test_a_fresh_process_loads_the_model_through_the_catalog_entry(trained, tmp_path, project_path):
    dataset = KerasModelDataset(filepath=str(tmp_path / "model.keras"))
    dataset.save(trained.model)
    records = _records()
    records.to_parquet(tmp_path / "records.parquet")
    np.save(tmp_path / "expected.npy", predict_probabilities(trained.model, records, trained.roles))
    script = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from kedro.io import DataCatalog
        from deep_learning_workflow.columns import ColumnRoles
        from deep_learning_workflow.model_inputs import predict_probabilities
        catalog = DataCatalog.from_config(
            {{"model": {{"type": "deep_learning_workflow.datasets.KerasModelDataset",
                        "filepath": r"{tmp_path / "model.keras"}"}}}}
        )
        roles = ColumnRoles.model_validate_json('{trained.roles.model_dump_json()}')
        got = predict_probabilities(catalog.load("model"), pd.read_parquet(r"{tmp_path / "records.parquet"}"), roles)
        np.testing.assert_allclose(got, np.load(r"{tmp_path / "expected.npy"}"), atol=1e-6)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_importing_the_pipeline_does_not_import_tensorflow(project_path):
    script = (
        "import sys\n"
        "import deep_learning_workflow.pipelines.modelling.nodes, deep_learning_workflow.datasets\n"
        "from deep_learning_workflow.pipelines.modelling import create_pipeline\n"
        "create_pipeline()\n"
        "from kedro.io import DataCatalog\n"
        "DataCatalog.from_config({'model': {'type': 'deep_learning_workflow.datasets.KerasModelDataset',"
        " 'filepath': 'data/06_models/model.keras', 'versioned': True}}).get('model')\n"
        "loaded = sorted(name for name in ('tensorflow', 'keras') if name in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
