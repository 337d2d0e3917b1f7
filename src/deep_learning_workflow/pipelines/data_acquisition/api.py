"""The web API source. Reading it is the catalog's work (``api_source``:
:class:`deep_learning_workflow.datasets.web_api.WebAPIDataset`); the node hands on its records and provenance."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deep_learning_workflow.datasets.http_client import SourceRead


def read_api_source(api_source: SourceRead) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The records of the web API and the provenance record of the responses they came from.

    Args:
        api_source: what ``api_source`` loaded; a source without a URL loads a table without columns.

    Returns:
        The records and the provenance record.
    """
    return api_source.records, dict(api_source.provenance)
