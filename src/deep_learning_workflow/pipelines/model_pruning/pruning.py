"""Magnitude pruning of the trained model's dense kernels and the fine-tuning that keeps the pruned weights at zero.

The trained model (each seed model of a seed ensemble, one by one) is rebuilt with
:func:`~deep_learning_workflow.models.builder.build_model_parts`
from the parameters and roles in its metadata, and its weights are copied in by layer name: the head view then
shares the layers of the full model, so the head is fine-tuned on preprocessed arrays exactly as
:func:`~deep_learning_workflow.models.fitting.train_model` trains it, and the full model (raw records
in) is what is saved. TensorFlow and Keras are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, target_classes
from deep_learning_workflow.models.builder import ModelParts, build_model_parts
from deep_learning_workflow.models.fitting import (
    TrainingDivergedError,
    fit_head,
    set_seed,
)
from deep_learning_workflow.models.preprocessing import as_params, fit_preprocessing
from deep_learning_workflow.models.schema import ModellingParams

from .schema import PruningParams

# The rebuilt model must reproduce the saved one; anything beyond float32 rounding means another model.
REBUILD_ATOL = 1e-5


class Rebuilt(NamedTuple):
    """The trained model rebuilt as :class:`ModelParts`, with what it was built from."""

    parts: ModelParts
    roles: ColumnRoles
    params: ModellingParams
    classes: list[str]


def pruned_count(size: int, sparsity: float) -> int:
    """How many of a kernel's ``size`` weights a ``sparsity`` zeroes: ``sparsity * size`` rounded half up."""
    return int(math.floor(sparsity * size + 0.5))


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """The weights kept (True) when the ``pruned_count`` smallest magnitudes of ``kernel`` are zeroed.

    Ties are broken by position (a stable sort), so exactly :func:`pruned_count` weights are pruned.
    """
    values = np.asarray(kernel)
    order = np.argsort(np.abs(values), axis=None, kind="stable")
    keep = np.ones(values.size, dtype=bool)
    keep[order[: pruned_count(values.size, sparsity)]] = False
    return keep.reshape(values.shape)


def dense_layers(head: Any) -> list[Any]:
    """The head's dense layers (hidden layers and output, of every family), the ones pruned.

    Embeddings (of categories, words and the periodic embeddings of numeric columns) are left whole.
    """
    from deep_learning_workflow.models.layers import is_dense

    return [layer for layer in head.layers if is_dense(layer)]


def kernel_sparsity(model: Any) -> list[dict[str, Any]]:
    """Per dense layer of a model: its name, kernel size and count and share of zero weights."""
    import keras

    from deep_learning_workflow.models.layers import is_dense

    rows = []
    for layer in model.layers:
        if is_dense(layer):
            kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel))
            zeros = int(kernel.size - np.count_nonzero(kernel))
            rows.append(
                {
                    "layer": layer.name,
                    "weights": int(kernel.size),
                    "zeros": zeros,
                    "sparsity": zeros / kernel.size,
                }
            )
    return rows


def apply_masks(layers: Sequence[Any], masks: Sequence[np.ndarray]) -> None:
    """Set each layer's pruned kernel weights (False in its mask) to zero."""
    import keras

    for layer, mask in zip(layers, masks, strict=True):
        layer.kernel.assign(keras.ops.where(mask, layer.kernel, keras.ops.zeros_like(layer.kernel)))


def keep_pruned_callback(layers: Sequence[Any], masks: Sequence[np.ndarray]) -> Any:
    """A Keras callback that re-applies the masks after every training batch."""
    import keras

    class KeepPrunedWeights(keras.callbacks.Callback):
        """Zeroes the pruned weights again after each optimiser step (Adam's momentum would revive them)."""

        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            apply_masks(layers, masks)

    return KeepPrunedWeights()


def rebuild_model(model: Any, model_metadata: Mapping[str, Any], train: pd.DataFrame) -> Rebuilt:
    """Rebuild the trained model as :class:`ModelParts` and copy its weights in, layer by layer.

    Args:
        model: the trained Keras model (raw records in).
        model_metadata: its metadata (``params``, ``roles``, ``target``, ``key``, ``positive_class``,
            ``classes``).
        train: the training split the model's preprocessing was adapted on.

    Raises:
        ValueError: when the rebuilt model differs from ``model`` (its metadata or the training split changed
            since it was trained).
    """
    import keras

    params = as_params(model_metadata["params"])
    roles = metadata_roles(model_metadata)
    classes = list(model_metadata["classes"])
    if target_classes(train[roles.target]) != classes:
        raise ValueError(
            f"The training split's classes {target_classes(train[roles.target])} are not the model's {classes} "
            "(data/06_models/model_metadata.json); re-run the modelling pipeline on the current split."
        )
    parts = build_model_parts(fit_preprocessing(train, roles, params), roles, params, len(classes))
    for layer in parts.model.layers:
        if not layer.weights:
            continue
        try:
            source = model.get_layer(layer.name)
            layer.set_weights(source.get_weights())
        except ValueError as error:
            raise ValueError(
                f"The trained model does not match its metadata at layer '{layer.name}' ({error}); re-run the "
                "modelling pipeline."
            ) from None
    feed = _feed(train.head(256), roles)
    expected = np.asarray(keras.ops.convert_to_numpy(model(feed, training=False)))
    actual = np.asarray(keras.ops.convert_to_numpy(parts.model(feed, training=False)))
    if expected.shape != actual.shape or not np.allclose(actual, expected, atol=REBUILD_ATOL):
        raise ValueError(
            "The model rebuilt from data/06_models/model_metadata.json and the training split does not reproduce "
            "the trained model's outputs: the split or the parameters changed since it was trained. Re-run the "
            "modelling pipeline (kedro run --pipelines modelling) first."
        )
    return Rebuilt(parts, roles, params, classes)


def rebuild_members(
    model: Any, model_metadata: Mapping[str, Any], train: pd.DataFrame
) -> list[Rebuilt]:
    """Each seed model of a trained seed ensemble rebuilt by :func:`rebuild_model` (one for a single model)."""
    from deep_learning_workflow.models.ensemble import members

    return [rebuild_model(member, model_metadata, train) for member in members(model)]


def assemble(rebuilt: Sequence[Rebuilt]) -> Any:
    """The model of the rebuilt members as they are now: the one model, or their ensemble (weights copied)."""
    from deep_learning_workflow.models.ensemble import build_ensemble

    if len(rebuilt) == 1:
        return rebuilt[0].parts.model
    return build_ensemble(rebuilt[0].parts.preprocessor, [r.parts.head for r in rebuilt])


def _feed(frame: pd.DataFrame, roles: ColumnRoles) -> dict[str, Any]:
    import tensorflow as tf

    from deep_learning_workflow.model_inputs import to_model_inputs

    return {
        name: tf.expand_dims(tf.constant(values), -1)
        for name, values in to_model_inputs(frame, roles).items()
    }


class Masks(NamedTuple):
    """The pruned layers and, for each, the kernel weights kept (True)."""

    layers: list[Any]
    masks: list[np.ndarray]


def metadata_roles(model_metadata: Mapping[str, Any]) -> ColumnRoles:
    """The resolved column roles a trained model takes, from its metadata."""
    return ColumnRoles(
        key=model_metadata.get("key"),
        target=model_metadata["target"],
        positive_class=model_metadata.get("positive_class"),
        **model_metadata["roles"],
    )


def prune(parts: ModelParts, sparsity: float) -> Masks:
    """Zero the ``sparsity`` share of smallest-magnitude weights of each dense kernel of ``parts``, in place."""
    import keras

    layers = dense_layers(parts.head)
    masks = [magnitude_mask(keras.ops.convert_to_numpy(layer.kernel), sparsity) for layer in layers]
    apply_masks(layers, masks)
    return Masks(layers, masks)


def fine_tune(
    rebuilt: Rebuilt,
    pruned: Masks,
    fit_on: pd.DataFrame,
    val: pd.DataFrame,
    pruning: PruningParams,
    primary_metric: str,
    seed: int,
) -> dict[str, Any]:
    """Fine-tune the pruned model's head with the pruned weights held at zero.

    The head is fitted on the preprocessed ``fit_on`` rows by :func:`~deep_learning_workflow.models.fitting.fit_head`,
    the loop ``train_model`` uses (same loss, metrics, optimiser kind, batch size and class weights; no
    augmentation), at ``pruning.learning_rate`` for at most ``pruning.epochs`` epochs, early-stopped on ``val`` as
    ``params:modelling.early_stopping`` says (best epoch's weights restored). One step runs per execution, so the
    masks are re-applied after every batch.

    Returns:
        ``epochs_run``, ``best_epoch`` (1-based) and the per-epoch ``history``.

    Raises:
        TrainingDivergedError: when the loss becomes NaN or infinite.
    """
    import keras

    parts, roles, params, classes = rebuilt
    layers, masks = pruned
    set_seed(seed)
    fitted = fit_head(
        parts,
        fit_on,
        val,
        roles,
        classes,
        params,
        seed,
        primary_metric=primary_metric,
        fit_name="train_balanced",
        learning_rate=pruning.learning_rate,
        # One batch per step, so that the masks are re-applied after every batch.
        steps_per_execution=1,
        epochs=pruning.epochs,
        callbacks=[keep_pruned_callback(layers, masks)],
    )
    # Restoring the best epoch's weights happens after the last batch: hold the masks once more.
    apply_masks(layers, masks)
    history = fitted.history
    losses = np.asarray(history.get("loss", []), dtype="float64")
    weights_finite = all(
        np.isfinite(keras.ops.convert_to_numpy(layer.kernel)).all() for layer in layers
    )
    if losses.size == 0 or not np.isfinite(losses).all() or not weights_finite:
        raise TrainingDivergedError(
            "Fine-tuning the pruned model diverged; lower params:pruning.learning_rate "
            f"(now {pruning.learning_rate})."
        )
    return {
        "epochs_run": int(losses.size),
        "best_epoch": fitted.best_epoch + 1,
        "history": history,
    }
