"""A loaded model version: validator, forward pass, classes and threshold (no TensorFlow at import)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .validation import Columns, RecordValidator


class NonFiniteOutput(ValueError):
    """The model returned NaN or an infinite probability for some records."""

    def __init__(self, records: list[int]) -> None:
        super().__init__(f"the model's output is not finite for the records {records}")
        self.records = records


@dataclass
class Scores:
    """Outputs of one version for n records."""

    probabilities: np.ndarray
    """(n, k) float64, columns in the order of the version's classes."""
    probability: list[float]
    """P(positive class) for a binary model, else the probability of the predicted label."""
    labels: list[str]


@dataclass
class ModelVersion:
    """One served model version.

    Args:
        version: the bundle's model version.
        classes: class labels in the order of the probability columns.
        positive_class: the thresholded class of a binary model (None for more classes).
        threshold: P(positive_class) >= threshold gives the positive label.
        validator: checks records against the bundle's schema.
        forward: input columns -> (n, k) probabilities.
        engine: ``numpy`` (the compiled fast path) or ``tf.function`` (the fallback).
        metadata: the bundle's metadata (schema, reference, versions ...).
        path: the bundle folder.
    """

    version: str
    classes: list[str]
    positive_class: str | None
    threshold: float | None
    validator: RecordValidator
    forward: Callable[[dict[str, Any]], np.ndarray]
    engine: str
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self) -> None:
        self.classes_key = tuple(self.classes)
        self._positive = None
        self._negative = None
        if (
            self.positive_class is not None
            and len(self.classes) == 2
            and self.threshold is not None
        ):
            self._positive = self.classes.index(self.positive_class)
            self._negative = self.classes[1 - self._positive]
            # Indexed by "probability >= threshold": False -> the negative label, True -> the positive.
            self._decide = [self._negative, self.positive_class].__getitem__

    def score(self, columns: Columns) -> Scores:
        """Probabilities and labels of validated records.

        Raises:
            NonFiniteOutput: when a record's probabilities are NaN or infinite.
        """
        output = np.asarray(self.forward(columns.values), dtype=np.float64)
        if columns.rows == 1:
            return self._score_one(output)
        finite = np.isfinite(output).all(axis=1)
        if not finite.all():
            raise NonFiniteOutput(np.flatnonzero(~finite).tolist())
        if self._positive is not None:
            column = output[:, self._positive]
            probability = column.tolist()
            labels = list(map(self._decide, (column >= self.threshold).tolist()))
        else:
            best = output.argmax(axis=1)
            probability = output[np.arange(len(best)), best].tolist()
            labels = list(map(self.classes.__getitem__, best.tolist()))
        return Scores(output, probability, labels)

    def _score_one(self, output: np.ndarray) -> Scores:
        row = output[0].tolist()
        if not all(math.isfinite(p) for p in row):
            raise NonFiniteOutput([0])
        if self._positive is not None:
            p = row[self._positive]
            return Scores(
                output, [p], [self.positive_class if p >= self.threshold else self._negative]
            )
        best = max(range(len(row)), key=row.__getitem__)
        return Scores(output, [row[best]], [self.classes[best]])

    def describe(self) -> dict[str, Any]:
        """What ``GET /metadata`` shows of this version."""
        return {
            "model_version": self.version,
            "classes": self.classes,
            "positive_class": self.positive_class,
            "decision_threshold": self.threshold,
            "engine": self.engine,
            "features": self.validator.features,
            "key": self.validator.key,
            "schema": self.metadata.get("schema"),
            "versions": self.metadata.get("versions"),
            "created_at": self.metadata.get("created_at"),
            "release_gate": self.metadata.get("release_gate"),
        }
