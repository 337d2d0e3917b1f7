"""The run's tags, written to the active MLflow run."""

from __future__ import annotations

import logging
from typing import Any

from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)


class MlflowTagsDataset(AbstractDataset[dict, None]):
    """Sets a dictionary as tags of the active MLflow run (the run kedro-mlflow opens for ``kedro run``).

    Write-only. Without an active run (tracking disabled, or a run outside kedro-mlflow) saving does nothing, so it
    never creates a run of its own. kedro-mlflow switches it off with its other ``Mlflow*`` datasets when tracking is
    disabled for a pipeline.
    """

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        self.metadata = metadata
        self._logging_activated = True

    def load(self) -> dict:
        raise DatasetError(
            "MlflowTagsDataset is write-only: read the tags in the MLflow UI or with MlflowClient."
        )

    def save(self, data: dict) -> None:
        if not self._logging_activated:
            return
        import mlflow  # imported here: the dataset is created by every session, most of which never save it

        if mlflow.active_run() is None:
            logger.info("No active MLflow run: the run's tags are not logged.")
            return
        mlflow.set_tags({str(key): str(value) for key, value in data.items()})

    def _exists(self) -> bool:
        return False

    def _describe(self) -> dict[str, Any]:
        return {}
