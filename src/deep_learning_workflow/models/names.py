"""The names of a model's inputs and of the layers built for one column, made and read in one place.

A model built by this project takes a dict of raw records keyed by the table's own column names, and names the
layers of each column ``<kind>_<column>`` (``impute_tenure``, ``lookup_contract``, ``embed_review``). Keras
accepts any dict key, but its layer and input names must be plain: a name with a space, a parenthesis or a
non-ASCII letter fails inside a traced TensorFlow function. So every column gets a *Keras name*:

- a column whose name matches ``[A-Za-z0-9.][A-Za-z0-9_.-]*`` keeps it (``tenure`` -> ``tenure``);
- any other column is spelled in ASCII (accents dropped), every run of other characters becomes ``_``, and the
  first six hex digits of the SHA-1 of the raw name are appended, so two names that read the same once cleaned
  stay apart: ``Monthly Income (€)`` -> ``Monthly_Income_4f0c1e``.

The mapping is reversible through the model itself: its input dict keeps the raw column names as keys while each
input layer carries the Keras name, so :func:`input_columns` reads ``{keras name: raw column}`` from any saved
model and raw records keyed by raw names work as they are.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_PLAIN = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-]*")
_OTHER = re.compile(r"[^A-Za-z0-9_.\-]+")

KINDS = (
    "impute",
    "clip",
    "scale",
    "missing",
    "lookup",
    "vectorize",
    "flatten",
    "normalize",
    "embed",
    "pool",
)
"""The kinds of per-column layers: ``<kind>_<keras name of the column>``."""


def keras_name(column: str) -> str:
    """The Keras name of a column (see the module docstring); the column's own name when it is plain."""
    if _PLAIN.fullmatch(column):
        return column
    ascii_text = unicodedata.normalize("NFKD", column).encode("ascii", "ignore").decode("ascii")
    cleaned = _OTHER.sub("_", ascii_text).strip("_") or "column"
    if not _PLAIN.match(cleaned):
        cleaned = f"c{cleaned}"
    digest = hashlib.sha1(column.encode("utf-8")).hexdigest()[:6]
    return f"{cleaned}_{digest}"


def keras_names(columns: Iterable[str]) -> dict[str, str]:
    """``{column: keras name}`` for the feature columns of one model.

    Raises:
        ValueError: when two columns get the same Keras name (one column is already spelled as the other's Keras
            name), naming both.
    """
    names: dict[str, str] = {}
    seen: dict[str, str] = {}
    for column in columns:
        name = keras_name(column)
        if name in seen and seen[name] != column:
            raise ValueError(
                f"The columns '{seen[name]}' and '{column}' both become the Keras name '{name}'; rename one of them "
                "in the data or in params:columns."
            )
        names[column], seen[name] = name, column
    return names


def layer_name(kind: str, column: str) -> str:
    """The name of the ``kind`` layer of a column, e.g. ``layer_name("impute", "tenure") == "impute_tenure"``."""
    if kind not in KINDS:
        raise ValueError(f"Unknown per-column layer kind '{kind}'; the kinds are {list(KINDS)}.")
    return f"{kind}_{keras_name(column)}"


def split_layer_name(name: str) -> tuple[str, str] | None:
    """``(kind, keras name of the column)`` of a per-column layer name, or None for any other layer."""
    kind, separator, rest = name.partition("_")
    return (kind, rest) if separator and kind in KINDS and rest else None


def input_columns(model: Any) -> dict[str, str]:
    """``{keras name: raw column}`` of a model built by this project, read from its input dict."""
    inputs = model.input
    if isinstance(inputs, Mapping):
        return {tensor.name: str(column) for column, tensor in inputs.items()}
    return {tensor.name: tensor.name for tensor in model.inputs}


def column_of_layer(model: Any, name: str) -> tuple[str, str] | None:
    """``(kind, raw column)`` of one of the model's per-column layers, or None for any other layer."""
    split = split_layer_name(name)
    if split is None:
        return None
    columns = input_columns(model)
    return (split[0], columns[split[1]]) if split[1] in columns else None


def column_layer(model: Any, kind: str, column: str) -> Any | None:
    """The model's ``kind`` layer of a raw column (e.g. its ``lookup`` layer), or None when it has none."""
    try:
        return model.get_layer(layer_name(kind, column))
    except ValueError:
        return None


@contextmanager
def raw_input_keys() -> Iterator[None]:
    """Silence Keras' warning that an input dict key differs from its tensor's name, which is the mapping here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        yield
