"""The data_processing pipeline: acquired_table -> clean_table, cleaning report and EDA report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from .eda import (
    plot_categorical_frequencies,
    plot_class_balance,
    plot_correlations,
    plot_missing_values,
    plot_numeric_distributions,
    summarise_clean_table,
)
from .nodes import clean_acquired_table


def create_pipeline(**kwargs) -> Pipeline:
    """Clean the acquired table row by row, then describe the clean table."""
    return Pipeline(
        [
            node(
                clean_acquired_table,
                inputs=["acquired_table", "params:columns", "params:data_processing"],
                outputs=["clean_table", "cleaning_report"],
                name="clean_acquired_table",
            ),
            node(
                summarise_clean_table,
                inputs=["clean_table", "params:columns"],
                outputs="eda_summary",
                name="summarise_clean_table",
            ),
            node(
                plot_class_balance,
                inputs=["clean_table", "params:columns"],
                outputs="eda_class_balance",
                name="plot_class_balance",
            ),
            node(
                plot_missing_values,
                inputs="clean_table",
                outputs="eda_missing_values",
                name="plot_missing_values",
            ),
            node(
                plot_numeric_distributions,
                inputs=["clean_table", "params:columns", "params:data_processing"],
                outputs="eda_numeric_distributions",
                name="plot_numeric_distributions",
            ),
            node(
                plot_categorical_frequencies,
                inputs=["clean_table", "params:columns", "params:data_processing"],
                outputs="eda_categorical_frequencies",
                name="plot_categorical_frequencies",
            ),
            node(
                plot_correlations,
                inputs=["clean_table", "params:columns"],
                outputs="eda_correlations",
                name="plot_correlations",
            ),
        ]
    )
