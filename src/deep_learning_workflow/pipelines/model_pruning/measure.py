"""The figures of the trade-off table: size on disk, single-record latency, the primary validation metric.

Latency is measured on the path the REST service takes for a request: the record is validated by the
:class:`~deep_learning_workflow.service.validation.RecordValidator` of the bundle's schema and scored by a
:class:`~deep_learning_workflow.service.scoring.ModelVersion` whose forward pass is chosen as the service chooses
it (:func:`deep_learning_workflow.inference.compile_engine`: the NumPy fast path, checked against the Keras model;
``tf.function`` otherwise). The Keras model's own eager call ``model(x)`` is timed beside it, both by
:func:`deep_learning_workflow.inference.time_single_records`.
"""

from __future__ import annotations

import gzip
import math
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


def json_records(frame: pd.DataFrame, roles: ColumnRoles) -> list[dict[str, Any]]:
    """Rows as a client posts them: numbers as floats, text as strings, a missing value as null."""
    inputs = to_model_inputs(frame, roles)
    numeric = set(roles.numeric or [])
    records = []
    for row in range(len(frame)):
        record: dict[str, Any] = {}
        for name, values in inputs.items():
            value = values[row]
            if name in numeric:
                record[name] = None if math.isnan(value) else float(value)
            else:
                record[name] = value or None
        records.append(record)
    return records


def serving_version(model: Any, train: pd.DataFrame, roles: ColumnRoles, classes: list[str]) -> Any:
    """A :class:`ModelVersion` of ``model`` built as the service builds one from a serving bundle."""
    from deep_learning_workflow.inference import compile_engine, probe_columns
    from deep_learning_workflow.metrics import positive_index
    from deep_learning_workflow.pipelines.serving.nodes import input_schema
    from deep_learning_workflow.service.scoring import ModelVersion
    from deep_learning_workflow.service.validation import RecordValidator

    schema = input_schema(train, roles)
    validator = RecordValidator(roles.features, schema, roles.key)
    engine = compile_engine(
        model, probe_columns({name: schema[name] for name in roles.features}), label="Pruned model"
    )
    binary = len(classes) == 2
    return ModelVersion(
        version="pruning",
        classes=classes,
        positive_class=classes[positive_index(classes, roles.positive_class)] if binary else None,
        threshold=0.5 if binary else None,
        validator=validator,
        forward=engine.forward,
        engine=engine.name,
    )


def single_record_latency(
    model: Any,
    train: pd.DataFrame,
    val: pd.DataFrame,
    roles: ColumnRoles,
    classes: list[str],
    records: int,
) -> dict[str, Any]:
    """Milliseconds to score one validation record, on the service's path and through ``model(x)``.

    Returns:
        ``engine`` (the service path's forward pass), ``records`` (how many were timed), ``latency_ms`` and
        ``latency_p95_ms`` (validate + score, as a request), ``keras_latency_ms`` (the eager ``model(x)`` call on
        one record already converted to tensors).
    """
    import tensorflow as tf

    from deep_learning_workflow.inference import time_single_records
    from deep_learning_workflow.service.validation import InvalidRecords

    version = serving_version(model, train, roles, classes)
    sample = val.head(records)
    valid = []
    for record in json_records(sample, roles):
        try:
            version.validator.validate([record], batch=False)
        except InvalidRecords:
            # A record outside the schema's ranges is refused by the service before scoring.
            continue
        valid.append(record)
    if not valid:
        raise ValueError(
            "No validation record passes the serving schema's checks, so no latency can be measured."
        )
    service = time_single_records(
        lambda record: version.score(version.validator.validate([record], batch=False)), valid
    )
    inputs = to_model_inputs(sample, roles)
    tensors = [
        {name: tf.constant(values[row : row + 1].reshape(1, 1)) for name, values in inputs.items()}
        for row in range(len(sample))
    ]
    keras_call = time_single_records(lambda feed: model(feed, training=False), tensors)
    return {
        "engine": version.engine,
        "records": len(valid),
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
        **single_record_latency(loaded, train, val, roles, classes, records),
        f"val_{metric}": validation_score(loaded, val, roles, classes, metric),
    }
