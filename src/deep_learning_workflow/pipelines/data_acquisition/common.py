"""What every acquisition module shares: the parameter keys, the dataset names and the cast of a source's table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.parameters import parse

from .schema import AcquisitionParameters

KEY = "data_acquisition"
API = f"{KEY}.sources.api"
WEB = f"{KEY}.sources.web"
# The sources joined as columns: source name (data_acquisition.sources.<name>) -> dataset name.
JOINED_SOURCES = {"database": "raw_billing", "api": "api_records", "web": "web_records"}
BASE_DATASET = "raw_customers"
ANNOTATIONS_DATASET = "raw_annotations"


def settings_of(parameters: Mapping[str, Any]) -> AcquisitionParameters:
    """The typed ``params:data_acquisition``."""
    return parse(AcquisitionParameters, parameters, KEY)


def content_sha256(frame: pd.DataFrame) -> str:
    """A digest of a table's columns and values (not of a file's bytes)."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    if len(frame.columns):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def cast_columns(
    frame: pd.DataFrame, dtypes: Mapping[str, str], where: str, key: str
) -> pd.DataFrame:
    missing = [column for column in dtypes if column not in frame]
    if missing:
        raise ValueError(
            f"{where} has no column {missing} named in {key}.dtypes; it has {list(frame.columns)}."
        )
    try:
        return frame.astype(dict(dtypes))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: cannot cast to {key}.dtypes {dict(dtypes)}: {error}") from None
