"""The rows and column roles every trial and every retraining of the study work with, as one node input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles
from deep_learning_workflow.parameters import parse


@dataclass(frozen=True)
class TuningData:
    """The splits the study trains and scores on, and ``params:columns``.

    Attributes:
        train: the real training rows: preprocessing is adapted on them.
        train_balanced: the rows the weights are fitted on (``train`` after balancing).
        val: the validation rows every trial is scored on.
        columns: ``params:columns``.
    """

    train: pd.DataFrame
    train_balanced: pd.DataFrame
    val: pd.DataFrame
    columns: Mapping[str, Any]

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        """``train``, ``train_balanced`` and ``val`` by name, as training takes them."""
        return {"train": self.train, "train_balanced": self.train_balanced, "val": self.val}

    def check_roles(self) -> None:
        """Check that every split has the columns ``params:columns`` names.

        Raises:
            ValueError: naming the split and the missing columns.
        """
        roles = parse(ColumnRoles, self.columns, "columns")
        for name, frame in self.frames.items():
            resolve_roles(frame, roles, name)


def gather_tuning_data(
    train: pd.DataFrame, train_balanced: pd.DataFrame, val: pd.DataFrame, columns: dict[str, Any]
) -> TuningData:
    """The splits and column roles the study and the judgement over seeds share, as one input."""
    return TuningData(train=train, train_balanced=train_balanced, val=val, columns=columns)
