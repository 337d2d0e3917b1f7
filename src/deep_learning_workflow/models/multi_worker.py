"""The training loop of ``params:modelling.distribution: multi_worker_mirrored``.

Keras 3.15's ``Model.fit`` cannot train under ``tf.distribute.MultiWorkerMirroredStrategy``: it reduces the
distributed batch of a model with dict inputs as one value, and the scalar loss along axis 0, and fails on both. So
the head is fitted here with TensorFlow's documented custom loop for that strategy: every worker builds the same
shuffled, globally batched ``tf.data`` stream, the strategy gives each worker its share of each batch, the loss is
averaged over the global batch (``tf.nn.compute_average_loss``) and the gradients are summed across workers by
``strategy.run``. The callbacks (the epoch metrics, early stopping, the NaN stop, pruning) run as under ``fit``,
on every worker alike: every worker holds the same weights, so they all stop at the same epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class LoopHistory:
    """What :func:`fit_multi_worker` returns: the per-epoch logs, like ``keras.callbacks.History``."""

    def __init__(self, history: dict[str, list[float]]) -> None:
        self.history = history


def fit_multi_worker(  # noqa: PLR0913
    head: Any,
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    callbacks: Sequence[Any] = (),
    verbose: int = 0,
) -> LoopHistory:
    """Fit the compiled ``head`` on ``(x, y)`` with its strategy's workers; ``batch_size`` is the global batch.

    Args:
        head: the compiled head, built under the multi-worker strategy (its optimiser is used).
        x: the head's inputs of the fitted rows (the same on every worker).
        y: one-hot labels.
        sample_weight: a weight per row, or None.
        batch_size: rows per step, summed over the workers.
        epochs: at most this many epochs.
        seed: the shuffling seed (the same on every worker, so they cut the same global batches).
        callbacks: Keras callbacks, called as ``fit`` calls them.
        verbose: unused (no progress bar); kept for the signature of ``fit``.

    Returns:
        The per-epoch logs (``loss`` and what the callbacks wrote).
    """
    import keras
    import tensorflow as tf

    from .layers import mean_member_crossentropy

    strategy = head.distribute_strategy
    weights = np.ones(len(y), dtype="float32") if sample_weight is None else sample_weight
    rows = tf.data.Dataset.from_tensor_slices((dict(x), y, weights.astype("float32")))
    batches = rows.shuffle(len(y), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    distributed = strategy.experimental_distribute_dataset(batches)

    def replica_step(inputs, labels, row_weights):
        with tf.GradientTape() as tape:
            probabilities = head(inputs, training=True)
            per_row = mean_member_crossentropy(labels, probabilities) * row_weights
            loss = tf.nn.compute_average_loss(per_row, global_batch_size=batch_size)
            if head.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(head.losses))
        gradients = tape.gradient(loss, head.trainable_variables)
        head.optimizer.apply_gradients(zip(gradients, head.trainable_variables, strict=True))
        return loss

    @tf.function
    def train_step(batch):
        return strategy.reduce("SUM", strategy.run(replica_step, args=batch), axis=None)

    history = keras.callbacks.History()
    every = keras.callbacks.CallbackList([*callbacks, history], model=head)
    head.stop_training = False
    every.on_train_begin()
    for epoch in range(epochs):
        every.on_epoch_begin(epoch)
        losses = [float(train_step(batch)) for batch in distributed]
        logs = {"loss": float(np.mean(losses))}
        every.on_epoch_end(epoch, logs)
        if head.stop_training:
            break
    every.on_train_end()
    return LoopHistory({key: list(values) for key, values in history.history.items()})
