"""What every acquisition module shares: the parameter key, the dataset names and a table's digest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.parameters import parse

from .schema import AcquisitionParameters

KEY = "data_acquisition"
# The sources joined as columns: source name -> dataset name.
JOINED_SOURCES = {"database": "raw_billing", "api": "api_source", "web": "web_source"}
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
