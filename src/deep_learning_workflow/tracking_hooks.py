"""What kedro-mlflow users expect of a run, beyond what kedro-mlflow logs itself.

kedro-mlflow opens one MLflow run per ``kedro run`` and logs parameters and the catalog's ``Mlflow*`` datasets.
:class:`TrackingHook` adds:

- the run's name: the pipelines run and the start time, e.g. ``__default__ 2026-05-02 14:03:11``;
- the ``runner`` tag as the runner's class name (kedro-mlflow writes the object's repr);
- per-epoch training metrics with their step, from the ``training_history`` the modelling pipeline writes
  (``training.loss``, ``training.val_loss``, ... at steps 1..epochs);
- the trained model in its run, as an MLflow pyfunc model that takes raw records
  (:mod:`deep_learning_workflow.mlflow_model`), with its signature and an input example;
- the model a release gate passed registered in the MLflow model registry under the project's name with the alias
  ``champion``; the version is written to ``model_registration`` (``data/06_models/released/registration.json``),
  which the serving bundle records;
- under ``ParallelRunner``, the worker processes log into the run the main process opened.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

logger = logging.getLogger(__name__)

MODEL_NAME = "deep_learning_workflow"
CHAMPION_ALIAS = "champion"
REGISTRATION_DATASET = "model_registration"
# mlflow.start_run() without a run id resumes the run this variable names; worker processes inherit it.
RUN_ID_VARIABLE = "MLFLOW_RUN_ID"


def _base_name(dataset: str) -> tuple[str, str]:
    """``("tuned.", "model")`` for ``"tuned.model"``, ``("", "model")`` for ``"model"``."""
    namespace, _, name = dataset.rpartition(".")
    return (f"{namespace}." if namespace else ""), name


def run_name(pipeline_names: list[str] | None, started: datetime) -> str:
    """A run's name: the pipelines run (``+``-joined) and the start time to the second."""
    return f"{'+'.join(pipeline_names or ['__default__'])} {started:%Y-%m-%d %H:%M:%S}"


def runner_name(runner: Any) -> str:
    """The runner's class name, from the runner, its class, its name or its repr (``<...ParallelRunner object at
    0x...>``)."""
    if runner is None:
        return "SequentialRunner"
    if isinstance(runner, str):
        match = re.search(r"(\w+)(?: object at 0x[0-9a-f]+>|\(|$)", runner.rsplit(".", 1)[-1])
        return match.group(1) if match else runner
    return runner.__name__ if isinstance(runner, type) else type(runner).__name__


def history_metrics(history: dict[str, list[float]], prefix: str) -> list[tuple[str, float, int]]:
    """``(metric name, value, epoch)`` for every finite value of a Keras history, epochs counted from 1."""
    import math

    return [
        (f"{prefix}{name}", float(value), epoch)
        for name, values in history.items()
        for epoch, value in enumerate(values, start=1)
        if value is not None and math.isfinite(float(value))
    ]


def _artifact_name(prefix: str) -> str:
    """The logged model's name in its run: ``model``, or ``tuned_model`` for the tuned pipeline's."""
    return f"{prefix}model".replace(".", "_")


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    requirements = []
    for package in ("deep_learning_workflow", "keras", "tensorflow", "mlflow", "pandas", "numpy"):
        try:
            requirements.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            requirements.append(package)
    return requirements


class TrackingHook:
    """Names the run, logs training curves and the model, registers a released model (see the module's text)."""

    def __init__(self) -> None:
        self._run_id: str | None = None

    @staticmethod
    def _active_run_id() -> str | None:
        import mlflow

        run = mlflow.active_run()
        return run.info.run_id if run else None

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        import mlflow

        self._run_id = (
            self._active_run_id()
        )  # opened by kedro-mlflow's hook, which runs before this one
        if self._run_id is None:
            return
        names = run_params.get("pipeline_names")
        mlflow.set_tags(
            {
                "mlflow.runName": run_name(names, datetime.now()),
                "runner": runner_name(run_params.get("runner")),
            }
        )
        os.environ[RUN_ID_VARIABLE] = self._run_id

    @hook_impl(tryfirst=True)
    def before_node_run(self, node: Node, catalog: Any, inputs: dict[str, Any]) -> None:
        # In a ParallelRunner worker no run is active: resume the main process's run before anything logs.
        import mlflow

        if mlflow.active_run() is None and os.environ.get(RUN_ID_VARIABLE):
            mlflow.start_run()

    @hook_impl
    def after_node_run(
        self, node: Node, catalog: Any, inputs: dict[str, Any], outputs: dict[str, Any]
    ) -> None:
        run_id = self._run_id or self._active_run_id()
        if run_id is None:
            return
        for dataset, value in outputs.items():
            prefix, name = _base_name(dataset)
            if name == "training_history" and isinstance(value, dict):
                self._log_history(run_id, value, prefix)
            elif name == "model" and ("train" in inputs or "train_split" in inputs):
                self._log_model(run_id, value, inputs, prefix)
            elif name == "release_gate" and isinstance(value, dict) and value.get("passed"):
                self._register(run_id, catalog, prefix, value)

    @staticmethod
    def _log_history(run_id: str, training_history: dict[str, Any], prefix: str) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        timestamp = int(datetime.now().timestamp() * 1000)
        metrics = [
            Metric(name, value, timestamp, step)
            for name, value, step in history_metrics(
                training_history.get("history", {}), f"{prefix}training."
            )
        ]
        client = MlflowClient()
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
            client.log_batch(run_id, metrics=metrics[start : start + 1000])

    @staticmethod
    def _log_model(run_id: str, model: Any, inputs: dict[str, Any], prefix: str) -> None:
        import mlflow
        from mlflow.models import infer_signature

        from deep_learning_workflow.columns import target_classes
        from deep_learning_workflow.mlflow_model import (
            MODEL_ARTIFACT,
            KerasRecordsModel,
            _input_kinds,
            records_to_inputs,
        )

        if not hasattr(model, "inputs"):
            return
        import pandas as pd

        kinds = _input_kinds(model)
        train = inputs["train"] if "train" in inputs else inputs["train_split"]
        roles = inputs.get("modelling_roles") or inputs.get("params:columns") or {}
        target = roles.get("target") if isinstance(roles, dict) else None
        if target not in train.columns or any(name not in train.columns for name in kinds):
            logger.warning(
                "The model is not logged to MLflow: its inputs are not columns of 'train'."
            )
            return
        if isinstance(train, pd.DataFrame):
            example = train[list(kinds)].head(5).reset_index(drop=True)
            classes = target_classes(train[target])
        else:  # a split handle (ParquetSplit): five rows and the target's classes, never the whole split
            example = train.head(5, list(kinds)).reset_index(drop=True)
            from deep_learning_workflow.models.streaming import label_counts

            classes = sorted(label_counts(train, target, 500_000).index)
        probabilities = model.predict(records_to_inputs(example, kinds), verbose=0)
        signature = infer_signature(example, pd.DataFrame(probabilities, columns=classes))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            model.save(path)
            mlflow.pyfunc.log_model(
                name=_artifact_name(prefix),
                python_model=KerasRecordsModel(classes),
                artifacts={MODEL_ARTIFACT: str(path)},
                signature=signature,
                input_example=example,
                # Stated, not inferred: inference would load the model in a subprocess (TensorFlow's start-up).
                pip_requirements=_requirements(),
            )

    @staticmethod
    def _register(run_id: str, catalog: Any, prefix: str, release_gate: dict[str, Any]) -> None:
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient()
        logged = mlflow.search_logged_models(
            experiment_ids=[client.get_run(run_id).info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{_artifact_name(prefix)}'",
            output_format="list",
        )
        if not logged:
            logger.warning(
                "The release gate passed, but this run trained no model: nothing is registered in MLflow."
            )
            return
        version = mlflow.register_model(logged[-1].model_uri, MODEL_NAME)
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, version.version)
        registration = {
            "registered_model": MODEL_NAME,
            "version": int(version.version),
            "alias": CHAMPION_ALIAS,
            "run_id": run_id,
            "model_uri": f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}",
            "model_fingerprint": release_gate.get("model_fingerprint"),
        }
        if f"{prefix}{REGISTRATION_DATASET}" in catalog:
            catalog.save(f"{prefix}{REGISTRATION_DATASET}", registration)
        logger.info(
            "Registered model '%s' version %s as @%s.", MODEL_NAME, version.version, CHAMPION_ALIAS
        )

    @hook_impl
    def after_pipeline_run(self) -> None:
        os.environ.pop(RUN_ID_VARIABLE, None)

    @hook_impl
    def on_pipeline_error(self) -> None:
        os.environ.pop(RUN_ID_VARIABLE, None)
