"""The web page source. Reading it is the catalog's work (``web_source``:
:class:`deep_learning_workflow.datasets.web_pages.WebPagesDataset`); the node hands on its records and provenance."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deep_learning_workflow.datasets.http_client import SourceRead


def read_web_source(web_source: SourceRead) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The records of the web pages and the provenance record of the responses they came from.

    Args:
        web_source: what ``web_source`` loaded; a source without URLs loads a table without columns.

    Returns:
        The records and the provenance record.
    """
    return web_source.records, dict(web_source.provenance)
