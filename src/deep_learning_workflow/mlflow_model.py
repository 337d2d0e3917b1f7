"""The trained Keras model as an MLflow pyfunc model that takes raw records.

``mlflow.pyfunc.load_model(uri).predict(frame)`` scores a pandas table of raw records (one column per feature, as in
``data/01_raw``) and returns one probability column per class, the same numbers as the ``.keras`` model, because it
*is* that model: the ``.keras`` file is the model's only artifact and its preprocessing layers live inside it.
Each input's dtype says how a column is fed: numbers as float32 with NaN for a missing value, strings with "" for a
missing value, as :mod:`deep_learning_workflow.model_inputs` feeds the model in training.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

MODEL_ARTIFACT = "keras_model"


def _input_kinds(model: Any) -> dict[str, str]:
    """Each model input's name and whether it takes ``"number"`` or ``"string"`` values."""
    kinds = {}
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        kinds[name] = "string" if "string" in str(tensor.dtype) else "number"
    return kinds


def records_to_inputs(frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, np.ndarray]:
    """The model's input dictionary from a table of raw records.

    Raises:
        ValueError: naming the columns the table lacks.
    """
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise ValueError(f"The records lack the model's input columns {missing}.")
    inputs = {}
    for name, kind in kinds.items():
        values = frame[name]
        if kind == "number":
            inputs[name] = pd.to_numeric(values).to_numpy(dtype="float32", na_value=np.nan)
        else:
            inputs[name] = np.where(values.isna(), "", values.astype(str)).astype(object)
    return inputs


class KerasRecordsModel(mlflow.pyfunc.PythonModel):
    """Scores raw records with the saved Keras model; returns one probability column per class.

    Args:
        classes: the class labels, in the order of the model's outputs.
    """

    def __init__(self, classes: list[str]) -> None:
        self.classes = [str(label) for label in classes]
        self._model = None
        self._kinds: dict[str, str] = {}

    def load_context(self, context: Any) -> None:
        # Imported here: only loading the pyfunc needs Keras (and the project's custom layers it registers).
        from deep_learning_workflow.datasets import load_keras_model

        self._model = load_keras_model(context.artifacts[MODEL_ARTIFACT])
        self._kinds = _input_kinds(self._model)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        probabilities = self._model.predict(records_to_inputs(model_input, self._kinds), verbose=0)
        return pd.DataFrame(np.asarray(probabilities, dtype="float64"), columns=self.classes)

    def __getstate__(self) -> dict[str, Any]:
        # The Keras model is the artifact file; it is loaded again by load_context.
        return {"classes": self.classes, "_model": None, "_kinds": {}}
