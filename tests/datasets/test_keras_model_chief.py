"""In a multi-worker run only the chief keeps the model file (TF_CONFIG names the worker)."""

from __future__ import annotations

import json

import pytest
from kedro.io.core import Version

from deep_learning_workflow.datasets import KerasModelDataset
from deep_learning_workflow.datasets.keras_model_dataset import is_chief

CLUSTER = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


def _config(task: dict, cluster: dict = CLUSTER) -> str:
    return json.dumps({"cluster": cluster, "task": task})


@pytest.mark.parametrize(
    ("config", "chief"),
    [
        (None, True),
        (_config({"type": "worker", "index": 0}), True),
        (_config({"type": "worker", "index": 1}), False),
        (_config({"type": "chief", "index": 0}, {"chief": ["a:1"], "worker": ["b:1"]}), True),
        (_config({"type": "worker", "index": 0}, {"chief": ["a:1"], "worker": ["b:1"]}), False),
    ],
)
def test_the_chief_is_worker_0_or_the_chief_task(monkeypatch, config, chief):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config)
    assert is_chief() is chief


def _model():
    import keras

    inputs = keras.Input((2,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))


@pytest.mark.parametrize(("index", "kept"), [(0, 1), (1, 0)])
def test_only_the_chief_keeps_the_saved_model(monkeypatch, tmp_path, index, kept):
    monkeypatch.setenv("TF_CONFIG", _config({"type": "worker", "index": index}))
    dataset = KerasModelDataset(filepath=str(tmp_path / "model.keras"), version=Version(None, None))
    dataset.save(_model())
    assert len(list(tmp_path.glob("model.keras/*/model.keras"))) == kept
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == list(
        tmp_path.glob("model.keras/*/model.keras")
    )
