"""The figures of the trade-off table: size on disk, single-record latency, the primary validation metric.

Latency is measured on the forward pass the REST service scores a request with, chosen as the service chooses it
(:func:`deep_learning_workflow.inference.engine_for_rows`: the NumPy fast path, checked against the Keras model;
``tf.function`` otherwise), one validation record at a time, as tuning's latency objective measures it. The Keras
model's own eager call ``model(x)`` is timed beside it, both by
:func:`deep_learning_workflow.inference.time_single_records`.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.model_inputs import to_model_inputs
from deep_learning_workflow.models.scoring import validation_score


def saved_and_loaded(model: Any) -> tuple[dict[str, int], Any]:
    """Save the model as a ``.keras`` file and load it back as the service loads a bundle's model.

    Returns:
        ``size_bytes`` (the ``.keras`` file) and ``gzip_bytes`` (that file gzip-compressed), and the loaded model.
        Keras stores the members of the ``.keras`` zip uncompressed, so zero weights shrink the file only once it
        is compressed (an image layer, an artifact store, a download).
    """
    import keras

    from deep_learning_workflow.datasets import load_keras_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        keras.saving.save_model(model, path)
        content = path.read_bytes()
        loaded = load_keras_model(str(path))
    sizes = {"size_bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9, mtime=0))}
    return sizes, loaded


def single_record_latency(
    model: Any, val: pd.DataFrame, roles: ColumnRoles, records: int
) -> dict[str, Any]:
    """Milliseconds to score one validation record, on the service's forward pass and through ``model(x)``.

    Returns:
        ``engine`` (the service's forward pass), ``records`` (how many were timed), ``latency_ms`` and
        ``latency_p95_ms`` (that forward pass), ``keras_latency_ms`` (the eager ``model(x)`` call on one record
        already converted to tensors).
    """
    import tensorflow as tf

    from deep_learning_workflow.inference import (
        engine_for_rows,
        single_records,
        time_single_records,
    )

    sample = val.head(records)
    engine = engine_for_rows(model, sample, roles, label="Pruned model", limit=records)
    service = time_single_records(engine.forward, single_records(sample, roles, limit=records))
    inputs = to_model_inputs(sample, roles)
    tensors = [
        {name: tf.constant(values[row : row + 1].reshape(1, 1)) for name, values in inputs.items()}
        for row in range(len(sample))
    ]
    keras_call = time_single_records(lambda feed: model(feed, training=False), tensors)
    return {
        "engine": engine.name,
        "records": len(sample),
        "latency_ms": service.median_ms,
        "latency_p95_ms": service.p95_ms,
        "keras_latency_ms": keras_call.median_ms,
    }


def describe_variant(
    model: Any,
    train: pd.DataFrame,
    val: pd.DataFrame,
    roles: ColumnRoles,
    classes: list[str],
    metric: str,
    records: int,
) -> dict[str, Any]:
    """Every figure of one row of the trade-off table, measured on the model as saved and loaded back.

    Each variant is timed after the same save and load, so a model built and fine-tuned in this process is not
    measured in another state than one read from disk.
    """
    from .pruning import kernel_sparsity

    sizes, loaded = saved_and_loaded(model)
    layers = kernel_sparsity(loaded)
    weights = sum(layer["weights"] for layer in layers)
    zeros = sum(layer["zeros"] for layer in layers)
    return {
        "achieved_sparsity": zeros / weights if weights else 0.0,
        "nonzero_weights": weights - zeros,
        **sizes,
        **single_record_latency(loaded, val, roles, records),
        f"val_{metric}": validation_score(loaded, val, roles, classes, metric),
    }
