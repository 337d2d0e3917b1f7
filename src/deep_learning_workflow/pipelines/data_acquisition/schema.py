"""Typed settings of the data_acquisition pipeline (``params:data_acquisition``).

Which sources feed the acquired table is configuration: each entry of ``sources`` has ``enabled``. The public file
(``raw_customers``) is always on: it is the base table every other source is joined onto by ``params:columns.key``.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    PositiveInt,
    model_validator,
)

from deep_learning_workflow.datasets.web_source import DtypeName
from deep_learning_workflow.parameters import Parameters, register

MIN_SALT_LENGTH = 16
# Where the HMAC key of sensitive.hash lives: credentials entry "deidentification", key "salt".
SALT_CREDENTIALS = "deidentification.salt"


class DatabaseSource(Parameters):
    """The existing database (``raw_billing``); its query and connection live in the catalog and credentials."""

    enabled: bool = True


class CrowdSource(Parameters):
    """Several annotators' labels per item (``raw_annotations``), aggregated into the target column.

    For an item whose agreement is at least ``min_agreement`` (and that has at least ``min_annotators`` labels),
    the majority label replaces the base table's target; flagged items keep the base table's value.
    """

    enabled: bool = False
    item_column: str | None = Field(
        None, description="Column naming the item; null means params:columns.key"
    )
    annotator_column: str = "annotator_id"
    label_column: str = "label"
    min_agreement: float = Field(
        0.5, ge=0, le=1, description="Lowest per-item agreement (share of agreeing annotator pairs)"
    )
    min_annotators: PositiveInt = 2


class Sources(Parameters):
    """Switches and settings of the sources joined onto the public file."""

    database: DatabaseSource = DatabaseSource()
    crowd: CrowdSource = CrowdSource()

    @model_validator(mode="before")
    @classmethod
    def _web_sources_are_datasets(cls, data: Any) -> Any:
        for name in ("api", "web"):
            if isinstance(data, dict) and name in data:
                raise ValueError(
                    f"sources.{name} is not a parameter: that source is the catalog entry {name}_source "
                    "(conf/base/catalog_data_acquisition.yml), with its http settings; it is on when it names a URL"
                )
        return data


class Sensitive(Parameters):
    """Columns de-identified before the acquired table is written.

    Hashing is pseudonymisation, not anonymisation: the same value always gets the same HMAC-SHA256 digest under
    the same salt, so rows stay linkable, and anyone holding the salt can test guesses. The salt is a secret, so it
    lives in the credentials (``deidentification.salt``), not here: parameters are logged to MLflow.
    """

    drop: list[str] = Field(default_factory=list)
    hash: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _no_salt(cls, data: Any) -> Any:
        if isinstance(data, dict) and "salt" in data:
            raise ValueError(
                "sensitive.salt is a secret and no longer a parameter (parameters are logged to MLflow): move it "
                f"to {SALT_CREDENTIALS} in conf/local/credentials.yml and delete it from the parameters"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Sensitive:
        both = sorted(set(self.drop) & set(self.hash))
        if both:
            raise ValueError(f"sensitive.drop and sensitive.hash both name {both}; choose one")
        return self


@register("data_acquisition")
class AcquisitionParameters(Parameters):
    """``params:data_acquisition``."""

    sources: Sources = Sources()
    dtypes: dict[str, DtypeName] | None = Field(
        min_length=1,
        description=(
            "Every column of the acquired table -> its pandas dtype, in output order; null takes the columns "
            "and dtypes as read and checks only the columns params:columns names"
        ),
    )
    sensitive: Sensitive = Sensitive()

    @model_validator(mode="before")
    @classmethod
    def _http_is_the_datasets(cls, data: Any) -> Any:
        if isinstance(data, dict) and "http" in data:
            raise ValueError(
                "http belongs to the catalog entries api_source and web_source (their `http` argument), not to the parameters"
            )
        return data
