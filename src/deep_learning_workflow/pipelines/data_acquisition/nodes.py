"""Nodes of the data_acquisition pipeline: read every source, join them on the key, validate, de-identify.

The public file (``raw_customers``) is the base table. Each enabled source is left-joined onto it by
``params:columns.key``: the database (``raw_billing``), the web API, the web pages and the crowd labels. The
joined table is validated against ``data_acquisition.dtypes`` and ``params:columns`` (every violation in one
error), then the sensitive columns are dropped or hashed, and only then is ``acquired_table`` written. Each
source and step has its module; this one holds the final report.
"""

from __future__ import annotations

from typing import Any

from .api import read_api_source
from .crowd import aggregate_annotations, fleiss_kappa
from .deidentify import deidentify_table, pseudonymise
from .join import join_sources
from .validation import validate_table
from .web_pages import read_web_source

__all__ = [
    "aggregate_annotations",
    "deidentify_table",
    "fleiss_kappa",
    "join_sources",
    "pseudonymise",
    "read_api_source",
    "read_web_source",
    "report_acquisition",
    "validate_table",
]


def report_acquisition(
    join_summary: dict[str, Any],
    api_provenance: dict[str, Any],
    web_provenance: dict[str, Any],
    annotation_summary: dict[str, Any],
    deidentification: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Gather what the acquisition read and did into one report.

    Args:
        join_summary: rows, content hashes and matches per source.
        api_provenance: the web API's provenance record.
        web_provenance: the web pages' provenance record.
        annotation_summary: the crowd labels' agreement report.
        deidentification: the columns dropped and hashed.

    Returns:
        The acquisition report (per source its provenance, rows and matched base rows; the output table) and
        the annotation report, written here with it so that a run stopped by validation rewrites neither.
    """
    sources = {name: dict(entry) for name, entry in join_summary["sources"].items()}
    sources["api"]["provenance"] = api_provenance
    sources["web"]["provenance"] = web_provenance
    if annotation_summary.get("enabled"):
        sources["crowd"]["agreement"] = {
            name: annotation_summary[name]
            for name in ("fleiss_kappa", "mean_item_agreement", "items", "flagged_items")
        }
    report = {
        "base": join_summary["base"],
        "sources": sources,
        "joined": join_summary["joined"],
        "deidentification": {
            name: deidentification[name] for name in ("dropped", "hashed", "method")
        },
        "acquired_table": {
            "rows": deidentification["rows"],
            "columns": deidentification["columns"],
        },
    }
    return report, annotation_summary
