"""The sources of transfer learning (``params:modelling.transfer``): what the catalog gave, checked against the
parameters and the data's columns before any model is built."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from deep_learning_workflow.columns import ColumnRoles

from .names import column_layer, input_columns
from .schema import ModellingParams

if TYPE_CHECKING:
    # Only a type: the models package loads nothing itself, datasets do.
    from deep_learning_workflow.datasets.word_vectors import WordVectors

logger = logging.getLogger(__name__)

KEY = "params:modelling.transfer"
WARM_START_ENTRY = "warm_start_model"
WORD_VECTORS_ENTRY = "pretrained_word_vectors"


class TransferSources(NamedTuple):
    """What the catalog gave: the warm-start model and the word vectors (None when absent or unused)."""

    model: Any = None
    word_vectors: WordVectors | None = None


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
