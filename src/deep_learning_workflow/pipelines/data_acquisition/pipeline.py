"""The data_acquisition pipeline."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from .nodes import (
    aggregate_annotations,
    deidentify_table,
    join_sources,
    read_api_source,
    read_web_source,
    report_acquisition,
    validate_table,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Sources -> joined table -> validated -> de-identified ``acquired_table`` + ``acquisition_report``."""
    settings = "params:data_acquisition"
    return Pipeline(
        [
            node(
                read_api_source,
                "api_source",
                ["api_records", "api_provenance"],
                name="read_api_source",
            ),
            node(
                read_web_source,
                "web_source",
                ["web_records", "web_provenance"],
                name="read_web_source",
            ),
            node(
                aggregate_annotations,
                ["raw_annotations", settings, "params:columns"],
                ["crowd_labels", "annotation_summary"],
                name="aggregate_annotations",
            ),
            node(
                join_sources,
                [
                    "raw_customers",
                    "raw_billing",
                    "api_records",
                    "web_records",
                    "crowd_labels",
                    settings,
                    "params:columns",
                ],
                ["joined_table", "join_summary"],
                name="join_sources",
            ),
            node(
                validate_table,
                ["joined_table", settings, "params:columns"],
                "validated_table",
                name="validate_table",
            ),
            node(
                deidentify_table,
                ["validated_table", "deidentification_salt", settings, "params:columns"],
                ["acquired_table", "deidentification_summary"],
                name="deidentify_table",
            ),
            node(
                report_acquisition,
                [
                    "join_summary",
                    "api_provenance",
                    "web_provenance",
                    "annotation_summary",
                    "deidentification_summary",
                ],
                ["acquisition_report", "annotation_report"],
                name="report_acquisition",
            ),
        ]
    )
