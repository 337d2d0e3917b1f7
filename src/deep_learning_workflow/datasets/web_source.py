"""What the web sources share: their settings' types and the read-only Kedro dataset shell around a reader.

A web source's catalog entry is validated when the catalog is built, so a bad argument stops the run before its
first node; loading reads the source (:mod:`deep_learning_workflow.datasets.http_client`) into a
:class:`~deep_learning_workflow.datasets.http_client.SourceRead`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from pydantic import AfterValidator, BaseModel, ConfigDict

from .http_client import SourceRead


class SourceSettings(BaseModel):
    """Settings of a web source: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


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


class WebSourceDataset(AbstractDataset[None, SourceRead]):
    """A read-only web source: its catalog arguments validated as ``settings_type``, loaded by ``read``.

    Subclasses set ``source`` (the catalog entry named in messages), ``settings_type`` and ``read``, and say in
    ``_describe`` where the source is (with credentials redacted).
    """

    source: ClassVar[str]
    settings_type: ClassVar[type[SourceSettings]]
    read: ClassVar[Callable[[Any], SourceRead]]

    def __init__(self, metadata: dict[str, Any] | None = None, **settings: Any) -> None:
        try:
            self._settings = self.settings_type.model_validate(settings)
        except ValueError as error:
            raise DatasetError(f"Invalid {self.source} settings in the catalog: {error}") from None
        self.metadata = metadata

    def load(self) -> SourceRead:
        return type(self).read(self._settings)

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self.source} is a web source; it is read only.")
