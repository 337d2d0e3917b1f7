"""The JSON of a batch answer, built from the score arrays in one go.

Each record's answer is ``{"probability": p, "label": l, "probabilities": {class: p_class, ...}}``. Building a dict
per record and serialising the list costs more than scoring a large batch; instead each column is serialised once
by orjson (so every number is spelt exactly as orjson spells it in a dict) and cut at its commas, and the pieces
are interleaved with the constant parts of the template by slice assignment, then joined: no Python code runs per
record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

from .scoring import Scores

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _numbers(values: np.ndarray | Sequence[float]) -> list[bytes]:
    """Each value as orjson spells it."""
    if isinstance(values, np.ndarray):
        text = orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=_NUMPY)
    else:
        text = orjson.dumps(values)
    return text[1:-1].split(b",")


def predictions_json(scores: Scores, classes: Sequence[str]) -> bytes:
    """``[{"probability", "label", "probabilities": {class: p}}, ...]`` for every record of ``scores``, as JSON."""
    count = len(scores.labels)
    if count == 0:
        return b"[]"
    keys = [orjson.dumps(name) for name in classes]
    # The constant text before each value of a record, then the text closing it.
    constants = [b'{"probability":', b',"label":', b',"probabilities":{' + keys[0] + b":"]
    constants += [b"," + key + b":" for key in keys[1:]]
    labels = {label: orjson.dumps(label) for label in set(scores.labels)}
    values = [
        _numbers(scores.probability),
        list(map(labels.__getitem__, scores.labels)),
        *[_numbers(scores.probabilities[:, column]) for column in range(len(classes))],
    ]
    stride = 2 * len(values) + 1
    pieces: list[bytes] = [b""] * (count * stride)
    for position, (constant, column) in enumerate(zip(constants, values, strict=True)):
        pieces[2 * position :: stride] = [constant] * count
        pieces[2 * position + 1 :: stride] = column
    pieces[stride - 1 :: stride] = [b"}},"] * count
    pieces[-1] = b"}}"
    return b"[" + b"".join(pieces) + b"]"
