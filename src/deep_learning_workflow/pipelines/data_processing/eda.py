"""The EDA report of the clean table: a JSON summary and plotly figures, counted here so a figure holds a few
numbers per bin or level instead of every row's value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
from deep_learning_workflow.parameters import parse

from .nodes import CLEAN, as_text
from .schema import DataProcessingParameters

MISSING_LABEL = "(missing)"
OTHER_LABEL = "(other)"


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _roles_of(clean_table: pd.DataFrame, columns: dict[str, Any]) -> ColumnRoles:
    roles = resolve_roles(clean_table, parse(ColumnRoles, columns, "columns"), CLEAN)
    if clean_table.empty:
        raise ValueError(f"Dataset '{CLEAN}' is empty: there is nothing to describe.")
    return roles


def _class_masks(clean_table: pd.DataFrame, target: str) -> dict[str, pd.Series]:
    labels = clean_table[target].astype("str")
    return {label: labels == label for label in target_classes(clean_table[target])}


def summarise_clean_table(clean_table: pd.DataFrame, columns: dict[str, Any]) -> dict[str, Any]:
    """Summary of the clean table: size, types, missing values, class counts, numeric statistics per class.

    Args:
        clean_table: the clean table.
        columns: ``params:columns``.

    Returns:
        A JSON-safe dictionary.
    """
    roles = _roles_of(clean_table, columns)
    masks = _class_masks(clean_table, roles.target)
    counts = {label: int(mask.sum()) for label, mask in masks.items()}
    numeric = roles.numeric or []
    by_class = {
        label: clean_table.loc[mask, numeric].describe().to_dict() if numeric else {}
        for label, mask in masks.items()
    }
    summary = {
        "rows": len(clean_table),
        "columns": clean_table.shape[1],
        "column_roles": roles.model_dump(),
        "dtypes": {column: str(dtype) for column, dtype in clean_table.dtypes.items()},
        "missing_values": {column: int(n) for column, n in clean_table.isna().sum().items()},
        "class_counts": counts,
        "class_ratio": {label: n / len(clean_table) for label, n in counts.items()},
        "categorical_levels": {c: int(clean_table[c].nunique()) for c in roles.categorical or []},
        "numeric_by_class": by_class,
    }
    return _plain(summary)


def _colour(index: int) -> str:
    return qualitative.Plotly[index % len(qualitative.Plotly)]


def _grid(titles: list[str], per_row: int, row_height: int) -> go.Figure:
    rows = max(1, math.ceil(len(titles) / per_row))
    figure = make_subplots(
        rows=rows,
        cols=per_row,
        subplot_titles=titles,
        vertical_spacing=min(0.3 / rows, 0.12) if rows > 1 else 0.1,
    )
    figure.update_layout(height=120 + row_height * rows)
    return figure


def _empty_figure(title: str, message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return figure


def plot_class_balance(clean_table: pd.DataFrame, columns: dict[str, Any]) -> go.Figure:
    """Bar chart of the rows per class of the target."""
    roles = _roles_of(clean_table, columns)
    masks = _class_masks(clean_table, roles.target)
    counts = [int(mask.sum()) for mask in masks.values()]
    total = sum(counts)
    figure = go.Figure(
        go.Bar(
            x=list(masks),
            y=counts,
            text=[f"{n} ({n / total:.1%})" for n in counts],
            textposition="auto",
            marker_color=[_colour(i) for i in range(len(counts))],
        )
    )
    figure.update_layout(
        title=f"Class balance of '{roles.target}' ({total} rows)",
        xaxis_title=roles.target,
        yaxis_title="rows",
    )
    return figure


def plot_missing_values(clean_table: pd.DataFrame) -> go.Figure:
    """Bar chart of the missing values per column."""
    if clean_table.empty:
        raise ValueError(f"Dataset '{CLEAN}' is empty: there is nothing to describe.")
    missing = clean_table.isna().sum()
    share = missing / len(clean_table)
    figure = go.Figure(
        go.Bar(
            x=[str(c) for c in missing.index],
            y=missing.to_numpy().tolist(),
            text=[f"{n} ({s:.1%})" if n else "" for n, s in zip(missing, share, strict=True)],
            textposition="outside",
        )
    )
    figure.update_layout(
        title=f"Missing values per column ({len(clean_table)} rows, {int(missing.sum())} missing values)",
        xaxis_title="column",
        yaxis_title="missing values",
        xaxis_tickangle=-45,
    )
    return figure


def plot_numeric_distributions(
    clean_table: pd.DataFrame, columns: dict[str, Any], data_processing: dict[str, Any]
) -> go.Figure:
    """Histograms of each numeric column by class, as the share of the class's rows in each bin.

    The bins are counted here, so the figure holds a few numbers per bin instead of every row's value.
    """
    roles = _roles_of(clean_table, columns)
    bins = parse(DataProcessingParameters, data_processing, "data_processing").eda.histogram_bins
    numeric = roles.numeric or []
    if not numeric:
        return _empty_figure("Numeric distributions by class", "The table has no numeric column.")
    masks = _class_masks(clean_table, roles.target)
    titles = [f"{c} ({int(clean_table[c].isna().sum())} missing)" for c in numeric]
    figure = _grid(titles, per_row=2, row_height=280)
    for position, column in enumerate(numeric):
        row, col = divmod(position, 2)
        values = clean_table[column].to_numpy(dtype="float64", na_value=np.nan)
        present = values[np.isfinite(values)]
        if present.size == 0:
            continue
        edges = np.histogram_bin_edges(present, bins=bins)
        centres = (edges[:-1] + edges[1:]) / 2
        for index, (label, mask) in enumerate(masks.items()):
            own = values[mask.to_numpy() & np.isfinite(values)]
            counts, _ = np.histogram(own, bins=edges)
            figure.add_trace(
                go.Bar(
                    x=centres.tolist(),
                    y=(100 * counts / max(int(mask.sum()), 1)).round(3).tolist(),
                    width=np.diff(edges).tolist(),
                    name=label,
                    legendgroup=label,
                    showlegend=position == 0,
                    marker_color=_colour(index),
                    opacity=0.6,
                ),
                row=row + 1,
                col=col + 1,
            )
    figure.update_layout(
        title=f"Numeric distributions by '{roles.target}' (% of the class's rows per bin)",
        barmode="overlay",
        bargap=0,
        legend_title_text=roles.target,
    )
    return figure


def _levels(values: pd.Series, max_categories: int) -> pd.Series:
    """Category labels, all but the most frequent levels as '(other)', missing values as '(missing)'."""
    labels = as_text(values)
    order = labels.value_counts()
    order = order.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    keep = set(order.index[:max_categories])
    return labels.where(labels.isin(keep) | labels.isna(), OTHER_LABEL).fillna(MISSING_LABEL)


def _shown_classes(classes: list[str], positive_class: str | None) -> list[str]:
    """The classes whose rate is drawn: the positive class of a binary target, every class otherwise."""
    if len(classes) == 2:
        return [positive_class if positive_class in classes else classes[-1]]
    return classes


def _level_shares(
    levels: pd.Series, target: pd.Series, classes: list[str]
) -> tuple[pd.Series, pd.DataFrame]:
    """Rows per level and each class's share of them, the most frequent level first."""
    table = pd.crosstab(levels, target).reindex(columns=classes, fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    rows = table.sum(axis=1)
    return rows, table.div(rows, axis=0)


def _rate_bar(
    rows: pd.Series, shares: pd.DataFrame, label: str, colour: int, legend: bool
) -> go.Bar:
    return go.Bar(
        x=[str(level) for level in shares.index],
        y=(100 * shares[label]).round(2).tolist(),
        customdata=rows.tolist(),
        hovertemplate=f"%{{x}}: %{{y:.1f}}% {label} of %{{customdata}} rows<extra></extra>",
        name=f"% {label}",
        legendgroup=label,
        showlegend=legend,
        marker_color=_colour(colour),
    )


def plot_categorical_frequencies(
    clean_table: pd.DataFrame, columns: dict[str, Any], data_processing: dict[str, Any]
) -> go.Figure:
    """The target rate per level of each categorical column, beside the rate over the whole table.

    A binary target shows the share of its positive class per level (a dotted line marks the overall share); a
    multi-class target shows the share of each class, stacked to 100%. Hovering a bar gives the level's row count,
    the rare levels are grouped as '(other)', missing values as '(missing)'.
    """
    roles = _roles_of(clean_table, columns)
    max_categories = parse(
        DataProcessingParameters, data_processing, "data_processing"
    ).eda.max_categories
    categorical = roles.categorical or []
    if not categorical:
        return _empty_figure("Target rate per category", "The table has no categorical column.")
    target = as_text(clean_table[roles.target])
    classes = target_classes(clean_table[roles.target])
    shown = _shown_classes(classes, roles.positive_class)
    overall = target.value_counts(normalize=True)
    figure = _grid(categorical, per_row=3, row_height=260)
    for position, column in enumerate(categorical):
        row, col = divmod(position, 3)
        rows, shares = _level_shares(_levels(clean_table[column], max_categories), target, classes)
        for label in shown:
            figure.add_trace(
                _rate_bar(rows, shares, label, classes.index(label), position == 0),
                row=row + 1,
                col=col + 1,
            )
        if len(shown) == 1:
            figure.add_hline(
                y=100 * float(overall.get(shown[0], 0.0)),
                line={"dash": "dot", "color": "grey"},
                row=row + 1,
                col=col + 1,
            )
    binary = len(shown) == 1
    title = (
        f"Share of '{roles.target}' = {shown[0]} per category (dotted: the whole table)"
        if binary
        else f"Share of each '{roles.target}' class per category"
    )
    figure.update_layout(
        title=title,
        barmode="group" if binary else "stack",
        legend_title_text=roles.target,
        autosize=True,
    )
    figure.update_yaxes(range=[0, 100], ticksuffix="%")
    return figure


def plot_correlations(clean_table: pd.DataFrame, columns: dict[str, Any]) -> go.Figure:
    """Heatmap of the Pearson correlations of the numeric columns (and of a binary target's positive class)."""
    roles = _roles_of(clean_table, columns)
    table = clean_table[roles.numeric or []].astype("float64")
    classes = target_classes(clean_table[roles.target])
    if len(classes) == 2:
        positive = roles.positive_class if roles.positive_class in classes else classes[-1]
        table[f"{roles.target} = {positive}"] = (
            as_text(clean_table[roles.target]) == positive
        ).astype("float64")
    if table.shape[1] < 2:
        return _empty_figure(
            "Correlations", "Fewer than two numeric columns: nothing to correlate."
        )
    matrix = table.corr(method="pearson").round(3)
    names = [str(c) for c in matrix.columns]
    values = matrix.to_numpy()
    figure = go.Figure(
        go.Heatmap(
            z=np.where(np.isfinite(values), values, None).tolist(),
            x=names,
            y=names,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            reversescale=True,
            text=[[("" if not np.isfinite(v) else f"{v:.2f}") for v in line] for line in values],
            texttemplate="%{text}",
        )
    )
    figure.update_layout(
        title="Correlations (Pearson, pairwise complete rows)", yaxis_autorange="reversed"
    )
    return figure
