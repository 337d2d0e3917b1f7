"""Validation of the joined table: every problem of the table listed in one error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import parse

from .common import KEY, settings_of

if TYPE_CHECKING:  # pandera takes a second to import: only the validation node pays for it
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors


def _role_of(column: str, roles: ColumnRoles) -> str:
    if column == roles.key:
        return " (the key, params:columns.key)"
    if column == roles.target:
        return " (the target, params:columns.target)"
    return ""


def _build_schema(dtypes: Mapping[str, str] | None, roles: ColumnRoles) -> pa.DataFrameSchema:
    import pandera.pandas as pa

    named = {"key": [roles.key] if roles.key else [], "target": [roles.target]}
    named |= {role: getattr(roles, role) or [] for role in ("numeric", "categorical", "text")}
    if dtypes is None:
        # No dtypes configured: the columns params:columns names must be there, with numbers where it says
        # numeric; any other column passes as read.
        return _roles_schema(named, roles)
    unknown = [
        f"columns.{role} names '{c}'" for role, cs in named.items() for c in cs if c not in dtypes
    ]
    if unknown:
        raise ValueError(
            f"params:{KEY}.dtypes lists every column of the acquired table, but {'; '.join(unknown)}. "
            "Add the column to the dtypes or fix params:columns."
        )
    schema_columns = {}
    for column, name in dtypes.items():
        expected = pd.api.types.pandas_dtype(name)
        checks = [
            pa.Check(
                lambda s, expected=expected: s.dtype == expected,
                name=f"dtype {name}",
                error=f"dtype {name}",
            )
        ]
        if column == roles.target:
            checks.append(
                pa.Check(
                    lambda s: s.dropna().nunique() >= 2, name="two classes", error="two classes"
                )
            )
        schema_columns[column] = pa.Column(
            checks=checks, nullable=column != roles.key, unique=column == roles.key, required=True
        )
    return pa.DataFrameSchema(
        schema_columns,
        strict=True,
        checks=[pa.Check(lambda frame: len(frame) > 0, name="not empty", error="not empty")],
    )


def _roles_schema(named: Mapping[str, list[str]], roles: ColumnRoles) -> pa.DataFrameSchema:
    import pandera.pandas as pa

    schema_columns = {}
    for role, columns in named.items():
        for column in columns:
            checks = []
            if role == "numeric":
                checks.append(
                    pa.Check(
                        pd.api.types.is_numeric_dtype,
                        name="a number",
                        error="a number",
                        element_wise=False,
                    )
                )
            if role == "target":
                checks.append(
                    pa.Check(
                        lambda s: s.dropna().nunique() >= 2, name="two classes", error="two classes"
                    )
                )
            schema_columns[column] = pa.Column(
                checks=checks,
                nullable=column != roles.key,
                unique=column == roles.key,
                required=True,
            )
    return pa.DataFrameSchema(
        schema_columns,
        strict=False,
        checks=[pa.Check(lambda frame: len(frame) > 0, name="not empty", error="not empty")],
    )


def _describe_failures(errors: SchemaErrors, table: pd.DataFrame, roles: ColumnRoles) -> list[str]:
    cases = errors.failure_cases
    lines = []
    for (column, check), group in cases.groupby(
        [cases["column"].astype(str), cases["check"].astype(str)], sort=False, dropna=False
    ):
        values = [str(value) for value in group["failure_case"].tolist()]
        if check == "column_in_schema":
            lines.extend(f"extra column '{value}' (not in {KEY}.dtypes)" for value in values)
        elif check == "column_in_dataframe":
            lines.extend(f"missing column '{value}'{_role_of(value, roles)}" for value in values)
        elif check.startswith("dtype "):
            lines.append(_dtype_problem(table[column], check[6:]))
        elif check == "a number":
            lines.append(
                f"column '{column}' (params:columns.numeric) has dtype {table[column].dtype}, expected a "
                "number"
            )
        elif check == "field_uniqueness":
            unique = sorted(set(values))
            lines.append(
                f"duplicate keys in '{column}': {len(unique)} value(s) on {len(values)} rows, e.g. {unique[:5]}"
            )
        elif check == "not_nullable":
            lines.append(
                f"column '{column}'{_role_of(column, roles)} has {len(values)} missing value(s)"
            )
        elif check == "two classes":
            classes = sorted(map(str, table[column].dropna().unique())) if column in table else []
            lines.append(
                f"target '{column}' has {len(classes)} class(es) {classes}; it needs at least two"
            )
        elif check == "not empty":
            lines.append("the table is empty (0 rows)")
        else:
            lines.append(f"column '{column}' fails {check}: {values[:5]}")
    return lines


def _is_integer_name(name: str) -> bool:
    return pd.api.types.is_integer_dtype(pd.api.types.pandas_dtype(name))


def _dtype_problem(values: pd.Series, expected: str) -> str:
    """Why a column does not have its dtype; for an integer read as float, the values no integer can hold."""
    problem = f"column '{values.name}' has dtype {values.dtype}, expected {expected}"
    if _is_integer_name(expected) and pd.api.types.is_float_dtype(values.dtype):
        missing = int(values.isna().sum())
        infinite = int(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)).sum())
        fractional = int(
            (values.dropna() % 1).pipe(lambda rest: rest[np.isfinite(rest)] != 0).sum()
        )
        held = [
            f"{count} {what}"
            for count, what in (
                (missing, "missing (NaN)"),
                (infinite, "infinite (±inf)"),
                (fractional, "non-integer"),
            )
            if count
        ]
        if held:
            problem += f": it holds {', '.join(held)} value(s), which an integer column cannot hold"
    return problem


def _non_finite_problems(table: pd.DataFrame) -> list[str]:
    """One line per numeric column holding +inf or -inf (NaN is a missing value, imputed after the split)."""
    lines = []
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column].dtype) or pd.api.types.is_bool_dtype(
            table[column].dtype
        ):
            continue
        values = table[column].to_numpy(dtype=float, na_value=np.nan)
        positive, negative = int(np.isposinf(values).sum()), int(np.isneginf(values).sum())
        if positive or negative:
            lines.append(
                f"column '{column}' has {positive + negative} infinite value(s) ({positive} +inf, "
                f"{negative} -inf); replace them at the source or with missing values"
            )
    return lines


def _positive_class_problem(table: pd.DataFrame, roles: ColumnRoles) -> list[str]:
    if roles.positive_class is None or roles.target not in table:
        return []
    classes = sorted(map(str, table[roles.target].dropna().unique()))
    if roles.positive_class in classes:
        return []
    return [
        f"params:columns.positive_class '{roles.positive_class}' does not occur in target "
        f"'{roles.target}', whose classes are {classes[:20]}"
    ]


def validate_table(
    table: pd.DataFrame, parameters: dict[str, Any], columns: dict[str, Any]
) -> pd.DataFrame:
    """Check the joined table before anything past ``01_raw`` is written.

    The expected columns and dtypes are ``data_acquisition.dtypes``; the key must be present and unique, the
    target present with at least two classes, and the table not empty. With ``dtypes`` null, the columns
    ``params:columns`` names must be present (numeric ones as numbers) and other columns pass as read.

    Args:
        table: the joined table.
        parameters: ``params:data_acquisition``.
        columns: ``params:columns``.

    Returns:
        The table, unchanged.

    Raises:
        ValueError: one error listing every violation (missing or extra columns, wrong dtypes, duplicate or
            missing keys, empty table, missing target or fewer than two classes, infinite numbers, a
            positive class the target lacks).
    """
    from pandera.errors import SchemaErrors

    settings = settings_of(parameters)
    roles = parse(ColumnRoles, columns, "columns")
    schema = _build_schema(settings.dtypes, roles)
    lines = []
    try:
        schema.validate(table, lazy=True)
    except SchemaErrors as errors:
        lines = _describe_failures(errors, table, roles)
    integers = {c for c, name in (settings.dtypes or {}).items() if _is_integer_name(name)}
    lines += _non_finite_problems(table.drop(columns=[c for c in integers if c in table]))
    lines += _positive_class_problem(table, roles)
    if not lines:
        return table
    raise ValueError(
        f"The acquired table fails validation ({len(lines)} problem(s)); nothing was written:\n"
        + "\n".join(f"  - {line}" for line in lines)
        + f"\nFix the sources, or params:{KEY}.dtypes and params:columns if the table is right."
    )
