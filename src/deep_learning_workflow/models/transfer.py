"""Transfer learning from parameters (``params:modelling.transfer``).

Some layers of the head start from a source instead of random weights, may stay frozen while the rest of the head
trains, and may then be unfrozen and fine-tuned at a lower learning rate:

- ``warm_start``: layers of a saved model of this project (catalog entry ``warm_start_model``; from a seed
  ensemble, seed model ``i`` starts from its member ``i``), matched by name
  (the model's layers are named by column: ``embed_<column>``, ``hidden_<i>``, ``batch_norm_<i>``,
  ``probabilities``) and by shape. Rows that stand for tokens or categories are matched by the vocabularies, never
  by index: the embedding row of a token, and the input row of the first hidden layer for a category, a numeric
  column or an embedding dimension, come from the same token, category or column of the source model.
- ``embeddings``: ``embed_<column>`` of text columns from word vectors in the GloVe / word2vec text format
  (catalog entry ``pretrained_word_vectors``), the row of each vocabulary token from the file's vector of the same
  token after the model's standardisation (lower case, punctuation stripped).

Rows and layers without a counterpart keep their fresh initialisation. :func:`warm_start` applies all this to a
freshly built model, before :func:`~deep_learning_workflow.models.fitting.train_model` trains it (head phase,
then fine-tuning: :func:`~deep_learning_workflow.models.fitting.fit_in_phases`); :func:`describe_transfer` checks
the sources before any training and reports what will be copied.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from deep_learning_workflow.columns import ColumnRoles

from .builder import build_model_parts
from .names import layer_name
from .preprocessing import fit_preprocessing
from .schema import ModellingParams, TransferParams
from .transfer_sources import (
    KEY,
    WARM_START_ENTRY,
    WORD_VECTORS_ENTRY,
    TransferSources,
    check_sources,
    embedding_columns,
    member_sources,
)
from .weight_matching import matched_weights, vocabulary

__all__ = [
    "TransferSources",
    "check_sources",
    "describe_transfer",
    "member_sources",
    "plan_transfer",
    "standardize_token",
    "warm_start",
]

logger = logging.getLogger(__name__)

# The punctuation TextVectorization(standardize="lower_and_strip_punctuation") removes (Keras' DEFAULT_STRIP_REGEX).
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
# TextVectorization's first two rows: padding and out-of-vocabulary; no word vector stands for them.
_TEXT_SPECIAL_ROWS = 2


def standardize_token(token: str) -> str:
    """A token as the model's text vectorisation spells it: lower case, punctuation stripped."""
    return _PUNCTUATION.sub("", token.lower())


def _check_listed(
    listed: list[str], weighted: list[str], source_layers: set[str], from_vectors: dict[str, str]
) -> None:
    """Raise naming every layer of ``transfer.warm_start.layers`` that cannot start from the warm-start model."""
    problems = [
        f"'{name}' is not a layer with weights of the model being trained ({weighted})"
        for name in listed
        if name not in weighted
    ]
    problems += [
        f"'{name}' is not in the warm-start model (its layers with weights: {sorted(source_layers)})"
        for name in listed
        if name in weighted and name not in source_layers
    ]
    problems += [
        f"'{name}' also starts from '{WORD_VECTORS_ENTRY}' ({KEY}.embeddings); keep one source"
        for name in listed
        if name in from_vectors
    ]
    if problems:
        raise ValueError(f"{KEY}.warm_start.layers: " + "; ".join(problems) + ".")


def _warm_start_weights(
    parts: Any,
    settings: TransferParams,
    source: Any,
    weighted: list[str],
    from_vectors: dict[str, str],
) -> tuple[dict[str, list[np.ndarray]], dict[str, str], dict[str, str]]:
    """The weights taken from the warm-start model, what was copied, and the layers kept fresh with why."""
    weights: dict[str, list[np.ndarray]] = {}
    copied: dict[str, str] = {}
    fresh: dict[str, str] = {}
    source_layers = {layer.name for layer in source.layers if layer.weights}
    listed = settings.warm_start.layers
    if listed is not None:
        _check_listed(listed, weighted, source_layers, from_vectors)
    for name in listed if listed is not None else weighted:
        if name in from_vectors:
            continue
        if name not in source_layers:
            fresh[name] = "not in the warm-start model"
            continue
        values, note = matched_weights(name, parts.model, source)
        if values is None and listed is not None:
            raise ValueError(f"{KEY}.warm_start.layers: '{name}' does not match: {note}.")
        if values is None:
            fresh[name] = note
        else:
            weights[name], copied[name] = values, note
    if not weights:
        raise ValueError(
            f"{KEY}.warm_start: no layer of the warm-start model ('{WARM_START_ENTRY}') matches the model being "
            f"trained ({fresh}); check that it was trained with the same hidden layers, units and embedding "
            "dimensions."
        )
    return weights, copied, fresh


def _word_vector_weights(
    parts: Any, name: str, column: str, word_vectors: Any
) -> tuple[list[np.ndarray], str]:
    """The embedding ``name`` of text column ``column`` with each vocabulary token's row from the word vectors."""
    tokens = vocabulary(parts.model, column) or []
    index: dict[str, int] = {}
    for row, token in enumerate(word_vectors.tokens):
        index.setdefault(standardize_token(token), row)
    matrix = np.asarray(parts.head.get_layer(name).get_weights()[0]).copy()
    matched = 0
    for row, token in enumerate(tokens[_TEXT_SPECIAL_ROWS:], start=_TEXT_SPECIAL_ROWS):
        if token in index:
            matrix[row] = word_vectors.vectors[index[token]]
            matched += 1
    known = len(tokens) - _TEXT_SPECIAL_ROWS
    if not matched:
        raise ValueError(
            f"{KEY}.embeddings: no token of the vocabulary of '{column}' ({known} tokens, e.g. "
            f"{tokens[_TEXT_SPECIAL_ROWS : _TEXT_SPECIAL_ROWS + 5]}) is in '{WORD_VECTORS_ENTRY}'; check "
            "that the file holds words of the same language and tokenisation."
        )
    return [matrix], f"{matched} of {known} tokens from {WORD_VECTORS_ENTRY}"


def plan_transfer(
    parts: Any, roles: ColumnRoles, params: ModellingParams, sources: TransferSources
) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
    """The weights each layer starts from, and a report of what is copied, kept fresh and frozen.

    Args:
        parts: the freshly built :class:`~deep_learning_workflow.models.builder.ModelParts`.
        roles: resolved column roles.
        params: modelling parameters.
        sources: checked sources (:func:`check_sources`).

    Raises:
        ValueError: naming the key when a listed layer is unknown or does not match, or nothing matches at all.
    """
    settings = params.transfer
    weighted = [layer.name for layer in parts.head.layers if layer.weights]
    unknown = [name for name in settings.freeze if name not in weighted]
    if unknown:
        raise ValueError(
            f"{KEY}.freeze names {unknown}, which are not layers with weights of the model being trained; its "
            f"layers with weights are {weighted}."
        )
    weights: dict[str, list[np.ndarray]] = {}
    copied: dict[str, str] = {}
    fresh: dict[str, str] = {}
    from_vectors = (
        {layer_name("embed", column): column for column in embedding_columns(roles, params)}
        if sources.word_vectors is not None
        else {}
    )
    if sources.model is not None:
        weights, copied, fresh = _warm_start_weights(
            parts, settings, sources.model, weighted, from_vectors
        )
    for name, column in from_vectors.items():
        weights[name], copied[name] = _word_vector_weights(
            parts, name, column, sources.word_vectors
        )
    for name in weighted:
        if name not in weights and name not in fresh:
            fresh[name] = "no source"
    report = {
        "copied": copied,
        "kept_fresh": fresh,
        "frozen": list(settings.freeze),
        "fine_tune": settings.fine_tune.model_dump(mode="json"),
    }
    return weights, report


def warm_start(
    parts: Any, roles: ColumnRoles, params: ModellingParams, sources: TransferSources | None
) -> dict[str, Any]:
    """Copy the source weights into a freshly built model and freeze ``transfer.freeze`` (before compiling).

    Returns:
        The report of :func:`plan_transfer` (``{"enabled": False}`` when transfer is off).
    """
    settings = params.transfer
    if not settings.enabled:
        return {"enabled": False}
    checked = check_sources(sources, roles, params)
    weights, report = plan_transfer(parts, roles, params, checked)
    for name, values in weights.items():
        parts.head.get_layer(name).set_weights(values)
    for name in settings.freeze:
        parts.head.get_layer(name).trainable = False
    return {"enabled": True, **report}


def describe_transfer(
    train: Any,
    roles: ColumnRoles,
    params: ModellingParams,
    sources: TransferSources | None,
    n_classes: int,
) -> tuple[TransferSources, dict[str, Any]]:
    """Check the sources and plan the transfer on a model built as training will build it, without training.

    Returns:
        The sources training uses (empty when transfer is off: a Kedro node output cannot be None) and the report
        of :func:`plan_transfer`.
    """
    if not params.transfer.enabled:
        return TransferSources(), {"enabled": False}
    checked = check_sources(sources, roles, params)
    parts = build_model_parts(fit_preprocessing(train, roles, params), roles, params, n_classes)
    # A warm-start ensemble gives each seed model one of its members; they share their layout, so the first
    # one's plan is every seed's.
    _, report = plan_transfer(parts, roles, params, member_sources(checked, 0))
    if checked.model is not None:
        from deep_learning_workflow.models.ensemble import member_count

        report["warm_start_members"] = member_count(checked.model)
    return checked, {"enabled": True, **report}
