"""Typed settings of the data_acquisition pipeline (``params:data_acquisition``).

Which sources feed the acquired table is configuration: each entry of ``sources`` has ``enabled``. The public file
(``raw_customers``) is always on: it is the base table every other source is joined onto by ``params:columns.key``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from deep_learning_workflow.parameters import Parameters, register

MIN_SALT_LENGTH = 16
# Where the HMAC key of sensitive.hash lives: credentials entry "deidentification", key "salt".
SALT_CREDENTIALS = "deidentification.salt"


def _pandas_dtype(name: str) -> str:
    try:
        pd.api.types.pandas_dtype(name)
    except TypeError as error:
        raise ValueError(
            f"'{name}' is not a pandas dtype (e.g. str, int64, float64, bool)"
        ) from error
    return name


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return url


DtypeName = Annotated[str, AfterValidator(_pandas_dtype)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
QueryValue = str | int | float | bool


class HttpSettings(Parameters):
    """How the web API and web page sources talk to servers (both use the same client)."""

    timeout_seconds: PositiveFloat = Field(
        10.0, description="Connect and read time-out of each request"
    )
    max_retries: NonNegativeInt = Field(
        3, le=10, description="Retries after a connection error, a time-out, HTTP 429 or 5xx"
    )
    backoff_seconds: NonNegativeFloat = Field(
        0.5, description="First wait before a retry; doubles at each retry"
    )
    backoff_max_seconds: NonNegativeFloat = Field(
        8.0, description="Upper bound of any wait before a retry, Retry-After included"
    )
    max_requests_per_second: PositiveFloat = Field(
        2.0, description="Rate limit over all requests of a source"
    )
    user_agent: str = Field(
        "deep-learning-workflow",
        min_length=1,
        description="Sent to servers and matched in robots.txt",
    )


class DatabaseSource(Parameters):
    """The existing database (``raw_billing``); its query and connection live in the catalog and credentials."""

    enabled: bool = True


class Paging(Parameters):
    """How the web API splits its records into pages.

    ``page``: request ``page_param`` = first_page, first_page + 1, ... (and ``size_param`` = page_size when set)
    until a page has no records. ``next_link``: follow the URL found at ``next_link_path`` of each JSON body until
    it is null or missing. ``none``: one request.
    """

    style: Literal["page", "next_link", "none"] = "page"
    page_param: str = "page"
    first_page: NonNegativeInt = 1
    size_param: str | None = "per_page"
    page_size: PositiveInt = 100
    next_link_path: str = "next"
    max_pages: PositiveInt = Field(
        1000, description="More pages than this is an error, never a silent cut"
    )


class ApiSource(Parameters):
    """A paginated JSON HTTP API whose records carry the key column."""

    enabled: bool = False
    url: HttpUrl | None = None
    query: dict[str, QueryValue] = Field(
        default_factory=dict, description="Query parameters of every request"
    )
    records_path: str = Field(
        "",
        description="Dotted path to the list of records in each JSON body; empty when the body is the list",
    )
    paging: Paging = Paging()
    rename: dict[str, str] = Field(default_factory=dict, description="Record field -> column name")
    columns: list[str] | None = Field(
        None, description="Columns to keep (after renaming); null keeps every field"
    )
    dtypes: dict[str, DtypeName] = Field(
        default_factory=dict, description="Column -> pandas dtype to cast to"
    )

    @model_validator(mode="after")
    def _url_when_enabled(self) -> ApiSource:
        if self.enabled and self.url is None:
            raise ValueError("sources.api.url is required when the API source is enabled")
        return self


class WebSource(Parameters):
    """Web pages holding a table (``table_selector``) or repeated items (``item_selector`` + ``fields``)."""

    enabled: bool = False
    urls: list[HttpUrl] = Field(default_factory=list, description="First page(s) to read")
    table_selector: str | None = Field(
        None, description="CSS selector of the <table>; its header row names the columns"
    )
    item_selector: str | None = Field(None, description="CSS selector of each repeated item")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Items: column -> CSS selector inside an item (its text is the value)",
    )
    next_selector: str | None = Field(
        None, description="CSS selector of the link to the next page; null reads each URL only"
    )
    max_pages: PositiveInt = 100
    rename: dict[str, str] = Field(
        default_factory=dict, description="Header or field -> column name"
    )
    required_columns: list[str] = Field(
        default_factory=list,
        description="Columns every page must have (after renaming); a page without them has changed layout",
    )
    dtypes: dict[str, DtypeName] = Field(
        default_factory=dict, description="Column -> pandas dtype (page text is str)"
    )

    @model_validator(mode="after")
    def _one_layout(self) -> WebSource:
        if not self.enabled:
            return self
        if not self.urls:
            raise ValueError(
                "sources.web.urls needs at least one URL when the web source is enabled"
            )
        if (self.table_selector is None) == (self.item_selector is None):
            raise ValueError("sources.web needs exactly one of table_selector and item_selector")
        if self.item_selector is not None and not self.fields:
            raise ValueError(
                "sources.web.fields (column -> CSS selector) is required with item_selector"
            )
        return self


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
    api: ApiSource = ApiSource()
    web: WebSource = WebSource()
    crowd: CrowdSource = CrowdSource()


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
    http: HttpSettings = HttpSettings()
    dtypes: dict[str, DtypeName] | None = Field(
        min_length=1,
        description=(
            "Every column of the acquired table -> its pandas dtype, in output order; null takes the columns "
            "and dtypes as read and checks only the columns params:columns names"
        ),
    )
    sensitive: Sensitive = Sensitive()
