"""The database source (``raw_billing``): its query and connection are the catalog's and the credentials' work
(``deep_learning_workflow.datasets.sql_dataset.PortableSQLQueryDataset``); what its result must hold is checked
here."""

from __future__ import annotations

import pandas as pd

from .common import JOINED_SOURCES


def check_database_rows(billing: pd.DataFrame) -> None:
    """Stop when the query returned no rows, which would leave every joined column empty.

    Raises:
        ValueError: naming the dataset and where its query and connection are set.
    """
    if len(billing) == 0:
        dataset = JOINED_SOURCES["database"]
        raise ValueError(
            f"The query of dataset '{dataset}' (the database) returned 0 rows; nothing was written. Check its "
            f"sql and load_args.params in the catalog, and the database its credentials point at; or set "
            "data_acquisition.sources.database.enabled to false."
        )
