"""Augmentation of the fitted rows during training (``params:modelling.augmentation``).

It changes the head's inputs, the arrays :func:`.training.prepare` computes once from the fitted rows, and only
in the ``tf.data`` pipeline that feeds the head's ``fit``: the saved model (preprocessing + head) holds no
augmentation layer, serving is unchanged, and the validation and test rows never pass through here. Each epoch
draws new noise, partners and dropped tokens from a generator seeded by the model's seed, so a seed reproduces
its model.

- Gaussian noise: on the scaled numeric values of ``encoded`` only, not on the missing indicators nor on the
  one-hot categories (flipping a 0/1 column by a fraction describes no real row).
- Mixup: each row is mixed with a random partner of its batch, ``x = lam * x_row + (1 - lam) * x_partner``, the
  one-hot labels (and sample weights) alike, with ``lam = max(u, 1 - u)``, ``u ~ Beta(alpha, alpha)``. Integer
  ids (text tokens, embedded categories) cannot be mixed: a row keeps its own ids, which with ``lam >= 0.5`` are
  those of the dominant example. Taking ``max(u, 1 - u)`` leaves the distribution of mixed pairs unchanged.
- Token dropout: each non-padding token of a text column becomes the out-of-vocabulary id (``oov``) or is deleted,
  the rest moving left (``remove``), with probability ``token_dropout``.
- Token swap: left to right, a token swaps places with the next (non-padding) one with probability
  ``token_swap``; a token just moved by a swap is not swapped again. The current model averages its token
  embeddings, which ignores order, so swaps change nothing it learns (they are for order-aware heads).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deep_learning_workflow.columns import ColumnRoles

from .names import keras_name
from .schema import AugmentationParams, ModellingParams

# The dense inputs of the head that mixup mixes: the scaled numeric values of a family that embeds them, and the
# other fixed features.
DENSE_INPUTS = ("numeric", "encoded")

# The ids TextVectorization gives the padding and the out-of-vocabulary token.
PADDING_ID = 0
OOV_ID = 1


def numeric_positions(
    preprocessing: Mapping[str, Any], roles: ColumnRoles, embedded: bool = False
) -> np.ndarray:
    """The columns of ``encoded`` (or, ``embedded``, of ``numeric``) that hold a scaled numeric value.

    ``encoded`` concatenates, in this order, each numeric column's value (and its missing indicator when it has
    one), then the one-hot categories; a family that embeds the numeric columns gets their values alone in
    ``numeric``. Columns with ``scaling: none`` are left out: a noise std in scaled units means nothing in their
    raw units.
    """
    positions = []
    offset = 0
    for column in roles.numeric or []:
        state = preprocessing["numeric"][column]
        if state["scaling"] != "none":
            positions.append(offset)
        offset += 2 if state["indicator"] and not embedded else 1
    return np.asarray(positions, dtype="int64")


def encoded_width(
    preprocessing: Mapping[str, Any], roles: ColumnRoles, params: ModellingParams
) -> int:
    """The number of columns of ``encoded`` the preprocessing state implies."""
    value = 0 if params.uses("plr") else 1
    width = sum(
        value + int(preprocessing["numeric"][column]["indicator"]) for column in roles.numeric or []
    )
    if params.categorical.encoding == "one_hot":
        width += sum(
            len(preprocessing["categorical"][column]["vocabulary"]) + 1
            for column in roles.categorical or []
        )
    if params.text.encoder == "ngrams":
        width += sum(len(preprocessing["text"][column]["vocabulary"]) + 1 for column in roles.text)
    return width


def add_gaussian_noise(
    encoded: np.ndarray, positions: np.ndarray, std: float, rng: np.random.Generator
) -> np.ndarray:
    """A copy of ``encoded`` with N(0, std) noise added to the columns ``positions``."""
    noisy = np.array(encoded, copy=True)
    if std > 0 and positions.size:
        noise = rng.normal(0.0, std, size=(len(noisy), positions.size))
        noisy[:, positions] += noise.astype(noisy.dtype)
    return noisy


def drop_tokens(tokens: np.ndarray, rate: float, mode: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of the token ids with each non-padding token replaced by :data:`OOV_ID` or deleted with ``rate``."""
    result = np.array(tokens, copy=True)
    if rate <= 0:
        return result
    dropped = (result != PADDING_ID) & (rng.random(result.shape) < rate)
    if mode == "oov":
        result[dropped] = OOV_ID
        return result
    kept = (result != PADDING_ID) & ~dropped
    # A stable sort on "not kept" moves the kept tokens to the front in their order; padding fills the rest.
    order = np.argsort(~kept, axis=1, kind="stable")
    result = np.take_along_axis(result, order, axis=1)
    result[~np.take_along_axis(kept, order, axis=1)] = PADDING_ID
    return result


def swap_tokens(tokens: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of the token ids where, left to right, a token swaps with the next with ``probability``.

    Padding never moves, and a token a swap just moved forward is not swapped again.
    """
    result = np.array(tokens, copy=True)
    if probability <= 0 or result.shape[1] < 2:
        return result
    chosen = (
        (rng.random((len(result), result.shape[1] - 1)) < probability)
        & (result[:, :-1] != PADDING_ID)
        & (result[:, 1:] != PADDING_ID)
    )
    previous = np.zeros(len(result), dtype=bool)
    for position in range(result.shape[1] - 1):
        swap = chosen[:, position] & ~previous
        rows = np.flatnonzero(swap)
        result[rows, position], result[rows, position + 1] = (
            result[rows, position + 1],
            result[rows, position],
        )
        previous = swap
    return result


def mixup_within_batches(
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    weights: np.ndarray | None,
    alpha: float,
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Mix each row with a random partner of its batch (rows ``k * batch_size`` to ``(k + 1) * batch_size - 1``).

    Returns:
        The mixed inputs (``encoded`` mixed, integer ids those of the row itself), labels and weights, then the
        partner index and ``lam`` of each row.
    """
    count = len(labels)
    batch = np.arange(count) // batch_size
    # Rows sorted by batch, then by a random key: a random permutation inside each batch.
    partner = np.lexsort((rng.random(count), batch))
    draw = rng.beta(alpha, alpha, size=count)
    lam = np.maximum(draw, 1.0 - draw)
    mixed = dict(inputs)
    for key in DENSE_INPUTS:
        if key in inputs:
            dense = inputs[key]
            share = lam[:, None].astype(dense.dtype)
            mixed[key] = share * dense + (1 - share) * dense[partner]
    share = lam[:, None].astype(labels.dtype)
    mixed_labels = share * labels + (1 - share) * labels[partner]
    mixed_weights = None
    if weights is not None:
        mixed_weights = (lam * weights + (1 - lam) * weights[partner]).astype(weights.dtype)
    return mixed, mixed_labels, mixed_weights, partner, lam


class EpochAugmenter:
    """Draws one augmented, shuffled epoch of the fitted rows at a time.

    Args:
        inputs: the head's inputs of the fitted rows (from :func:`.training.prepare`); never changed.
        labels: their one-hot labels.
        weights: their sample weights, or None.
        settings: ``params:modelling.augmentation``.
        positions: the columns of ``encoded`` that get noise (:func:`numeric_positions`).
        text_columns: the inputs holding token ids.
        batch_size: rows per batch; mixup partners come from the same batch.
        seed: the model's seed; epoch ``i`` draws from a generator seeded by ``(seed, i)``.
    """

    def __init__(
        self,
        inputs: Mapping[str, np.ndarray],
        labels: np.ndarray,
        weights: np.ndarray | None,
        settings: AugmentationParams,
        positions: np.ndarray,
        text_columns: Sequence[str],
        batch_size: int,
        seed: int,
    ) -> None:
        self.inputs = dict(inputs)
        self.labels = labels
        self.weights = weights
        self.settings = settings
        self.positions = positions
        self.text_columns = list(text_columns)
        self.batch_size = batch_size
        self.seed = int(seed)

    def epoch(
        self, index: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None, np.ndarray]:
        """Epoch ``index``: augmented inputs, labels and weights, and the fitted row each one comes from."""
        rng = np.random.default_rng([self.seed, index])
        settings = self.settings
        order = rng.permutation(len(self.labels))
        inputs = {name: values[order] for name, values in self.inputs.items()}
        labels = self.labels[order]
        weights = None if self.weights is None else self.weights[order]
        noisy = "numeric" if "numeric" in inputs else "encoded"
        if noisy in inputs and settings.gaussian_noise_std > 0:
            inputs[noisy] = add_gaussian_noise(
                inputs[noisy], self.positions, settings.gaussian_noise_std, rng
            )
        for column in self.text_columns:
            tokens = drop_tokens(
                inputs[column], settings.token_dropout, settings.token_dropout_mode, rng
            )
            inputs[column] = swap_tokens(tokens, settings.token_swap, rng)
        if settings.mixup_alpha > 0:
            inputs, labels, weights, _, _ = mixup_within_batches(
                inputs, labels, weights, settings.mixup_alpha, self.batch_size, rng
            )
        return inputs, labels, weights, order


def augmented_dataset(augmenter: EpochAugmenter) -> Any:
    """A finite ``tf.data.Dataset`` of one epoch's batches; every new iteration (epoch) draws a new epoch.

    The draws happen in NumPy once per epoch; ``tf.data`` only slices them into batches. Keras opens the next
    epoch's iterator before the current epoch's end callbacks run, so epochs are counted by iterations opened,
    not by callbacks.
    """
    import tensorflow as tf

    counter = itertools.count()
    with_weights = augmenter.weights is not None

    def one_epoch():
        inputs, labels, weights, _ = augmenter.epoch(next(counter))
        yield (inputs, labels, weights) if with_weights else (inputs, labels)

    def spec(values: np.ndarray) -> Any:
        return tf.TensorSpec(shape=(None, *values.shape[1:]), dtype=tf.as_dtype(values.dtype))

    signature: tuple[Any, ...] = (
        {name: spec(values) for name, values in augmenter.inputs.items()},
        spec(augmenter.labels),
    )
    if with_weights:
        signature = (*signature, spec(augmenter.weights))
    batches = math.ceil(len(augmenter.labels) / augmenter.batch_size)
    dataset = tf.data.Dataset.from_generator(one_epoch, output_signature=signature).flat_map(
        lambda *epoch: tf.data.Dataset.from_tensor_slices(epoch).batch(augmenter.batch_size)
    )
    # A known length lets Keras count the steps of an epoch without running out of data first.
    return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(
        tf.data.AUTOTUNE
    )


def fit_data(
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    weights: np.ndarray | None,
    preprocessing: Mapping[str, Any],
    roles: ColumnRoles,
    params: ModellingParams,
    seed: int,
) -> dict[str, Any]:
    """The training-data arguments of the head's ``fit``: the arrays as they are, or augmented epochs.

    Args:
        inputs: the head's inputs of the fitted rows (from :func:`.training.prepare`).
        labels: their one-hot labels.
        weights: their sample weights, or None.
        preprocessing: the fitted preprocessing state (gives the layout of ``encoded``).
        roles: resolved column roles.
        params: ``params:modelling``.
        seed: the model's seed.

    Returns:
        ``x``, ``y``, ``sample_weight``, ``batch_size`` and ``shuffle`` for plain training; with augmentation on,
        ``x`` (a ``tf.data.Dataset`` that shuffles and batches itself) and ``shuffle=False``.

    Raises:
        ValueError: when ``encoded`` does not have the columns the preprocessing state implies.
    """
    settings = params.augmentation
    if not settings.enabled:
        return {
            "x": inputs,
            "y": labels,
            "sample_weight": weights,
            "batch_size": params.batch_size,
            "shuffle": True,
        }
    if "encoded" in inputs:
        expected = encoded_width(preprocessing, roles, params)
        if inputs["encoded"].shape[1] != expected:
            raise ValueError(
                f"The encoded features have {inputs['encoded'].shape[1]} columns where the preprocessing implies "
                f"{expected}; params:modelling.augmentation cannot tell the numeric columns apart. Turn it off."
            )
    augmenter = EpochAugmenter(
        inputs,
        labels,
        weights,
        settings,
        numeric_positions(preprocessing, roles, embedded="numeric" in inputs),
        [keras_name(column) for column in roles.text if keras_name(column) in inputs],
        params.batch_size,
        seed,
    )
    return {"x": augmented_dataset(augmenter), "shuffle": False}
