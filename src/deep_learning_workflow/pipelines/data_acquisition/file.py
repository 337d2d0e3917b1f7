"""The public file source (``raw_customers``), the base table every other source is joined onto.

Reading it is the catalog's work (``deep_learning_workflow.datasets.source_file.SourceCSVDataset`` reports an empty
file or another delimiter); what is checked here holds for any file type.
"""

from __future__ import annotations

import pandas as pd

from .common import BASE_DATASET


def check_base_table(customers: pd.DataFrame) -> None:
    """Stop when the public file holds no rows (a header-only file, or a file filtered to nothing).

    Raises:
        ValueError: naming the dataset and what was read.
    """
    if len(customers.columns) == 0:
        raise ValueError(
            f"Dataset '{BASE_DATASET}' (the public file) has no columns; nothing was written. Check the file "
            "and the catalog entry's load_args."
        )
    if len(customers) == 0:
        raise ValueError(
            f"Dataset '{BASE_DATASET}' (the public file) has a header but no rows ({len(customers.columns)} "
            "columns, 0 rows); nothing was written. Put the table's rows in the file."
        )
