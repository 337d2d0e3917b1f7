"""Column roles: which column of the user's table is the key, the target and each kind of feature."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from pydantic import Field, NonNegativeInt

from deep_learning_workflow.parameters import Parameters, register

register("seed")(Annotated[NonNegativeInt, Field(description="The one seed of the workflow")])


@register("columns")
class ColumnRoles(Parameters):
    """Roles of the table's columns (``params:columns``).

    ``numeric`` and ``categorical`` are inferred from the data types when left out (null): number columns are
    numeric, every other column that is not the key, the target or text is categorical.
    """

    key: str | None = None
    target: str
    positive_class: str | None = Field(
        default=None,
        description="Binary targets: the class whose probability is reported and thresholded",
    )
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    text: list[str] = []

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric then categorical then text (inferred lists must be resolved first)."""
        return [*(self.numeric or []), *(self.categorical or []), *self.text]


def resolve_roles(frame: pd.DataFrame, roles: ColumnRoles, dataset: str) -> ColumnRoles:
    """Check the roles against a table and fill in the inferred ones.

    Args:
        frame: the table the roles describe.
        roles: the configured roles.
        dataset: the table's catalog name, for error messages.

    Returns:
        The roles with ``numeric`` and ``categorical`` filled in.

    Raises:
        ValueError: naming each configured column that the table does not have.
    """
    named = {"columns.key": [roles.key] if roles.key else [], "columns.target": [roles.target]}
    named |= {
        f"columns.{role}": getattr(roles, role) or [] for role in ("numeric", "categorical", "text")
    }
    missing = [
        f"{where} names '{column}'"
        for where, columns in named.items()
        for column in columns
        if column not in frame
    ]
    if missing:
        raise ValueError(
            f"Dataset '{dataset}' has no column for: {'; '.join(missing)}. "
            f"Its columns are {list(frame.columns)}; fix params:columns in conf/<env>/parameters.yml."
        )
    taken = {roles.key, roles.target, *roles.text}
    numeric = roles.numeric
    if numeric is None:
        numeric = [
            c
            for c in frame.select_dtypes("number").columns
            if c not in taken and c not in (roles.categorical or [])
        ]
    categorical = roles.categorical
    if categorical is None:
        categorical = [c for c in frame.columns if c not in taken and c not in numeric]
    return roles.model_copy(update={"numeric": list(numeric), "categorical": list(categorical)})


def target_labels(target: pd.Series) -> pd.Series:
    """A target column as class labels (strings); a missing target stays missing.

    Integral numbers read as floats (``1.0``, as a column with a missing value is read) become ``"1"``, so a label
    is spelled the same whichever way the table was read.
    """
    values = target.dropna()
    if pd.api.types.is_float_dtype(values) and (values % 1 == 0).all():
        values = values.astype("int64")
    return values.astype(str).reindex(target.index).astype(object).where(target.notna(), None)


def target_classes(target: pd.Series) -> list[str]:
    """The classes of a target column as strings, in the order a model's probability columns follow."""
    return sorted(target_labels(target).dropna().unique().tolist())
