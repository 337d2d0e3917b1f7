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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from deep_learning_workflow.columns import ColumnRoles

from .builder import build_model_parts
from .names import column_layer, input_columns, layer_name, split_layer_name
from .preprocessing import fit_preprocessing
from .schema import ModellingParams

if TYPE_CHECKING:
    # Only a type: the models package loads nothing itself, datasets do.
    from deep_learning_workflow.datasets.word_vectors import WordVectors

logger = logging.getLogger(__name__)

KEY = "params:modelling.transfer"
WARM_START_ENTRY = "warm_start_model"
WORD_VECTORS_ENTRY = "pretrained_word_vectors"
# The punctuation TextVectorization(standardize="lower_and_strip_punctuation") removes (Keras' DEFAULT_STRIP_REGEX).
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
# TextVectorization's first two rows: padding and out-of-vocabulary; no word vector stands for them.
_TEXT_SPECIAL_ROWS = 2


class TransferSources(NamedTuple):
    """What the catalog gave: the warm-start model and the word vectors (None when absent or unused)."""

    model: Any = None
    word_vectors: WordVectors | None = None


def standardize_token(token: str) -> str:
    """A token as the model's text vectorisation spells it: lower case, punctuation stripped."""
    return _PUNCTUATION.sub("", token.lower())


def _model_roles(model: Any) -> dict[str, tuple[str, str]]:
    """Column -> (role, input dtype) of a model built by this project, read from its layer names."""
    columns = input_columns(model)
    roles = {}
    for tensor in model.inputs:
        column, dtype = columns[tensor.name], str(tensor.dtype)
        if column_layer(model, "vectorize", column) is not None:
            role = "text"
        elif column_layer(model, "lookup", column) is not None:
            role = "categorical"
        elif dtype.startswith("float"):
            role = "numeric"
        else:
            role = "unknown"
        roles[column] = (role, dtype)
    return roles


def _data_roles(roles: ColumnRoles) -> dict[str, tuple[str, str]]:
    data = {column: ("numeric", "float32") for column in roles.numeric or []}
    data |= {column: ("categorical", "string") for column in roles.categorical or []}
    data |= {column: ("text", "string") for column in roles.text}
    return data


def check_warm_start_model(model: Any, roles: ColumnRoles) -> None:
    """Check that every column the warm-start model takes is a feature of the data, in the same role and dtype.

    Raises:
        ValueError: naming the key, the column and the mismatch.
    """
    data = _data_roles(roles)
    for column, (role, dtype) in sorted(_model_roles(model).items()):
        if column not in data:
            raise ValueError(
                f"{KEY}.warm_start: the warm-start model ('{WARM_START_ENTRY}') takes the column '{column}' "
                f"({role}, {dtype}), which params:columns does not list among the features {sorted(data)}. "
                "Warm-start from a model trained on the same columns, or add the column to params:columns."
            )
        if data[column] != (role, dtype):
            raise ValueError(
                f"{KEY}.warm_start: the warm-start model ('{WARM_START_ENTRY}') takes '{column}' as a {role} "
                f"column ({dtype} input), but params:columns makes it {data[column][0]} ({data[column][1]} input). "
                "Give the column the same role as in the model's training, or warm-start from another model."
            )


def embedding_columns(roles: ColumnRoles, params: ModellingParams) -> list[str]:
    """The text columns whose embeddings start from the word vectors.

    Raises:
        ValueError: when ``transfer.embeddings.columns`` names a column that is not a text column, or there is none.
    """
    wanted = params.transfer.embeddings.columns
    if params.text.encoder != "embedding":
        raise ValueError(
            f"{KEY}.embeddings starts word embeddings, but params:modelling.text.encoder is "
            f"'{params.text.encoder}', which has none; set text.encoder: embedding or disable {KEY}.embeddings."
        )
    if wanted is None:
        if not roles.text:
            raise ValueError(
                f"{KEY}.embeddings is enabled but params:columns.text lists no text column; list one or disable it."
            )
        return list(roles.text)
    unknown = [column for column in wanted if column not in roles.text]
    if unknown:
        raise ValueError(
            f"{KEY}.embeddings.columns names {unknown}, which are not text columns {list(roles.text)} of "
            "params:columns.text."
        )
    return list(wanted)


def check_sources(
    sources: TransferSources | None, roles: ColumnRoles, params: ModellingParams
) -> TransferSources:
    """Check the sources against the parameters and the data's columns, before any model is built.

    Returns:
        The sources the parameters use (an unused one is dropped).

    Raises:
        ValueError: naming the key when an enabled source is missing or does not fit the data or the parameters.
    """
    settings = params.transfer
    sources = sources or TransferSources()
    model = words = None
    if settings.warm_start.enabled:
        if sources.model is None:
            raise ValueError(
                f"{KEY}.warm_start.enabled is true, but the catalog entry '{WARM_START_ENTRY}' gave no model: put "
                "the saved .keras model at its filepath (conf/<env>/catalog_modelling.yml) or disable the warm start."
            )
        check_warm_start_model(sources.model, roles)
        model = sources.model
    elif sources.model is not None:
        logger.info(
            "'%s' is present but %s.warm_start is disabled: not used.", WARM_START_ENTRY, KEY
        )
    if settings.embeddings.enabled:
        if sources.word_vectors is None:
            raise ValueError(
                f"{KEY}.embeddings.enabled is true, but the catalog entry '{WORD_VECTORS_ENTRY}' gave no word "
                "vectors: put the GloVe/word2vec text file at its filepath (conf/<env>/catalog_modelling.yml) or "
                "disable the pretrained embeddings."
            )
        embedding_columns(roles, params)
        dimension = sources.word_vectors.dimension
        if dimension != params.text.embedding_dim:
            raise ValueError(
                f"params:modelling.text.embedding_dim is {params.text.embedding_dim}, but the word vectors of "
                f"'{WORD_VECTORS_ENTRY}' have {dimension} values ({KEY}.embeddings); set text.embedding_dim to "
                f"{dimension} or use a file of {params.text.embedding_dim}-value vectors."
            )
        words = sources.word_vectors
    elif sources.word_vectors is not None:
        logger.info(
            "'%s' is present but %s.embeddings is disabled: not used.", WORD_VECTORS_ENTRY, KEY
        )
    return TransferSources(model, words)


def member_sources(sources: TransferSources | None, index: int) -> TransferSources | None:
    """The sources of seed model ``index``: from a warm-start seed ensemble, its member ``index`` (cycling through
    the members when more seeds are trained than it has), as a single model with the usual layer names."""
    if sources is None or sources.model is None:
        return sources
    from deep_learning_workflow.models.ensemble import member_count, member_model

    count = member_count(sources.model)
    if count == 1:
        return sources
    return TransferSources(member_model(sources.model, index % count), sources.word_vectors)


def _inbound(entry: Mapping[str, Any]) -> list[str]:
    """Names of the layers feeding a layer, from a functional model's config entry."""
    nodes = entry.get("inbound_nodes") or []
    if len(nodes) != 1 or not nodes[0].get("args"):
        return []
    tensors = nodes[0]["args"][0]
    tensors = tensors if isinstance(tensors, list) else [tensors]
    return [
        tensor["config"]["keras_history"][0]
        for tensor in tensors
        if isinstance(tensor, dict) and "keras_history" in tensor.get("config", {})
    ]


def _input_names(model: Any, layer: str) -> list[tuple[Any, ...]] | None:
    """What each input column of ``layer`` stands for (a numeric column, a category, an embedding dimension).

    None when the layer's input is not a concatenation of preprocessing outputs (e.g. a deeper hidden layer).
    """
    entries = {entry["name"]: entry for entry in model.get_config()["layers"]}

    def names(producer: str) -> list[tuple[Any, ...]] | None:
        entry = entries.get(producer)
        if entry is None:
            return None
        if entry["class_name"] == "Concatenate":
            parts = [names(name) for name in _inbound(entry)]
            return None if any(p is None for p in parts) else [n for p in parts for n in p]
        if entry["class_name"] == "PeriodicEmbedding":
            inbound = _inbound(entry)
            values = names(inbound[0]) if len(inbound) == 1 else None
            size = entry["config"]["embedding_dim"]
            return (
                None
                if values is None
                else [("plr", *v[1:], d) for v in values for d in range(size)]
            )
        kind, column = split_layer_name(producer) or ("", "")
        if kind in ("flatten", "normalize"):
            vectorize = model.get_layer(layer_name("vectorize", column))
            return [("token", column, token) for token in vectorize.get_vocabulary()]
        if kind in ("impute", "clip", "scale"):
            return [("value", column)]
        if kind == "missing":
            return [("missing", column)]
        if kind == "lookup" and entry["config"].get("output_mode") == "one_hot":
            return [
                ("category", column, token) for token in model.get_layer(producer).get_vocabulary()
            ]
        if kind == "pool":
            dimension = model.get_layer(layer_name("embed", column)).output_dim
            return [("embedding", column, d) for d in range(dimension)]
        return None

    inbound = _inbound(entries.get(layer, {}))
    return names(inbound[0]) if len(inbound) == 1 else None


def _vocabulary(model: Any, column: str) -> list[str] | None:
    for kind in ("vectorize", "lookup"):
        layer = column_layer(model, kind, column)
        if layer is not None:
            return [str(token) for token in layer.get_vocabulary()]
    return None


def _shape_note(target: list[np.ndarray], source: list[np.ndarray]) -> str:
    return f"shapes {[list(w.shape) for w in target]} here, {[list(w.shape) for w in source]} in the warm-start model"


def _by_rows(
    target: np.ndarray, source: np.ndarray, target_keys: list[Any], source_keys: list[Any]
) -> tuple[np.ndarray, int]:
    """``target`` with each row whose key the source also has replaced by the source's row of that key."""
    index = {key: row for row, key in reversed(list(enumerate(source_keys)))}
    result = target.copy()
    matched = 0
    for row, key in enumerate(target_keys):
        if key in index:
            result[row] = source[index[key]]
            matched += 1
    return result, matched


def _matched_weights(
    name: str, target_model: Any, source_model: Any
) -> tuple[list[np.ndarray] | None, str]:
    """The weights of layer ``name`` taken from the source model, or None and why not."""
    target = [np.asarray(w) for w in target_model.get_layer(name).get_weights()]
    source = [np.asarray(w) for w in source_model.get_layer(name).get_weights()]
    if len(target) != len(source):
        return None, f"{len(target)} weight arrays here, {len(source)} in the warm-start model"
    split = split_layer_name(name)
    column = split[1] if split is not None and split[0] == "embed" else None
    vocabularies = (
        (_vocabulary(target_model, column), _vocabulary(source_model, column)) if column else None
    )
    if vocabularies and None not in vocabularies:
        if target[0].shape[1] != source[0].shape[1]:
            return None, (
                f"embedding dimension {target[0].shape[1]} here, {source[0].shape[1]} in the warm-start model"
            )
        matrix, matched = _by_rows(target[0], source[0], *vocabularies)
        if not matched:
            return None, "no token or category in common with the warm-start model's vocabulary"
        return [matrix], f"{matched} of {len(vocabularies[0])} rows matched by token"
    keys = (_input_names(target_model, name), _input_names(source_model, name))
    if name.startswith("hidden_") and None not in keys and keys[0] != keys[1]:
        # The kernel's rows stand for the input columns (numeric columns, one-hot categories, embedding
        # dimensions); with other vocabularies or columns they sit elsewhere, so they are matched by what they are.
        if target[0].shape[1:] != source[0].shape[1:] or [w.shape for w in target[1:]] != [
            w.shape for w in source[1:]
        ]:
            return None, _shape_note(target, source)
        kernel, matched = _by_rows(target[0], source[0], *keys)
        if not matched:
            return None, "no input column in common with the warm-start model"
        return [kernel, *source[1:]], f"{matched} of {len(keys[0])} input rows matched by column"
    if [w.shape for w in target] != [w.shape for w in source]:
        return None, _shape_note(target, source)
    return source, "copied"


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
        source_layers = {layer.name for layer in sources.model.layers if layer.weights}
        listed = settings.warm_start.layers
        if listed is not None:
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
        for name in listed if listed is not None else weighted:
            if name in from_vectors:
                continue
            if name not in source_layers:
                fresh[name] = "not in the warm-start model"
                continue
            values, note = _matched_weights(name, parts.model, sources.model)
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
    for name, column in from_vectors.items():
        vocabulary = _vocabulary(parts.model, column) or []
        index: dict[str, int] = {}
        for row, token in enumerate(sources.word_vectors.tokens):
            index.setdefault(standardize_token(token), row)
        matrix = np.asarray(parts.head.get_layer(name).get_weights()[0]).copy()
        matched = 0
        for row, token in enumerate(vocabulary[_TEXT_SPECIAL_ROWS:], start=_TEXT_SPECIAL_ROWS):
            if token in index:
                matrix[row] = sources.word_vectors.vectors[index[token]]
                matched += 1
        known = len(vocabulary) - _TEXT_SPECIAL_ROWS
        if not matched:
            raise ValueError(
                f"{KEY}.embeddings: no token of the vocabulary of '{column}' ({known} tokens, e.g. "
                f"{vocabulary[_TEXT_SPECIAL_ROWS : _TEXT_SPECIAL_ROWS + 5]}) is in '{WORD_VECTORS_ENTRY}'; check "
                "that the file holds words of the same language and tokenisation."
            )
        weights[name] = [matrix]
        copied[name] = f"{matched} of {known} tokens from {WORD_VECTORS_ENTRY}"
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
