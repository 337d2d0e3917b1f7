"""kedro-mlflow's artifact dataset, made picklable so that ``kedro run --runner ParallelRunner`` can use it.

``kedro_mlflow.io.artifacts.MlflowArtifactDataset`` builds a new class inside its ``__new__`` (a subclass of the
wrapped dataset's class), which ``pickle`` cannot find by name. ``ParallelRunner`` pickles every dataset it hands
to a worker process, and Kedro checks every dataset the catalog has built, so one such entry stops any parallel
run. kedro-mlflow offers no picklable variant. This module builds exactly the same object and teaches its class
to pickle itself as "call this constructor again with the same arguments", carrying the run id, so a worker logs
to the run the main process opened (:class:`deep_learning_workflow.tracking_hooks.TrackingHook` sets that id).

Use it in the catalog in place of the kedro-mlflow type, with the same arguments::

    validation_metrics:
      type: deep_learning_workflow.datasets.mlflow_artifact.MlflowArtifactDataset
      artifact_path: evaluation
      dataset:
        type: json.JSONDataset
        filepath: data/08_reporting/validation_metrics.json
"""

from __future__ import annotations

from typing import Any

from kedro_mlflow.io.artifacts import MlflowArtifactDataset as _KedroMlflowArtifactDataset


def _rebuild(
    dataset: str | dict,
    run_id: str | None,
    artifact_path: str | None,
    credentials: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    logging_activated: bool,
) -> Any:
    instance = MlflowArtifactDataset(dataset, run_id, artifact_path, credentials, metadata)
    instance._logging_activated = logging_activated
    return instance


class MlflowArtifactDataset(_KedroMlflowArtifactDataset):
    """Saves with the wrapped dataset, then logs the saved file as an artifact of the MLflow run.

    Args:
        dataset: The wrapped dataset's type (a string) or its full definition (a dict with ``type``).
        run_id: The run to log to; ``None`` logs to the active run.
        artifact_path: The folder inside the run's artifacts.
        credentials: Credentials passed on to the wrapped dataset.
        metadata: Kedro metadata, e.g. the kedro-viz layer.
    """

    def __new__(
        cls,
        dataset: str | dict,
        run_id: str | None = None,
        artifact_path: str | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        instance = _KedroMlflowArtifactDataset(
            dataset=dataset,
            run_id=run_id,
            artifact_path=artifact_path,
            credentials=credentials,
            metadata=metadata,
        )

        def reduce(self) -> tuple:
            arguments = (dataset, self.run_id, artifact_path, credentials, metadata)
            return _rebuild, (*arguments, self._logging_activated)

        # The class was made for this one instance, so the method is set on it alone.
        type(instance).__reduce__ = reduce
        return instance
