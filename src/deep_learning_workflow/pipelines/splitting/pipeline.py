"""The splitting pipeline: clean_table -> train, val, test, train_balanced and the split report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from .balancing import balance_training_split
from .nodes import report_split, split_clean_table


def create_pipeline(**kwargs) -> Pipeline:
    """Split the clean table, balance the training split only, report both.

    Only ``split_clean_table`` touches the test split (it writes it); the final evaluation node is the one reader.
    """
    return Pipeline(
        [
            node(
                split_clean_table,
                inputs=["clean_table", "params:columns", "params:splitting", "params:seed"],
                outputs=["train", "val", "test", "split_summary"],
                name="split_clean_table",
            ),
            node(
                balance_training_split,
                inputs=["train", "params:columns", "params:splitting", "params:seed"],
                outputs="train_balanced",
                name="balance_training_split",
            ),
            node(
                report_split,
                inputs=["split_summary", "train_balanced", "params:columns", "params:splitting"],
                outputs="split_report",
                name="report_split",
            ),
        ]
    )
