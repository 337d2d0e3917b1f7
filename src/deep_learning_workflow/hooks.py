"""Project hooks: checks before the first node, the run lock, and the run's record in MLflow and the bundle."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Pipeline

# The shared parameter blocks register their schemas on import; each pipeline's nodes register their own.
from deep_learning_workflow import columns, problem  # noqa: F401
from deep_learning_workflow.parameters import validate_parameters
from deep_learning_workflow.processes import current_process, git_commit, is_alive
from deep_learning_workflow.run_lock import RunLock, RunLockSettings
from deep_learning_workflow.versions import package_versions

PARAMS_PREFIX = "params:"
RUN_LOCK_CONFIG = "run_lock"
logger = logging.getLogger(__name__)


class ValidateParametersHook:
    """Validates every parameter block the run's nodes take before the first node runs."""

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        names = sorted(name for name in pipeline.inputs() if name.startswith(PARAMS_PREFIX))
        validate_parameters(
            {name[len(PARAMS_PREFIX) :]: catalog.load(name) for name in names}, complete=True
        )


class CheckConnectionsHook:
    """Connects to every database the run reads (datasets with a ``check_connection`` method) before the first
    node runs, so an unreachable server or refused credentials stop the run before anything is written."""

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        problems = []
        credentials_file = _credentials_file(
            Path(run_params.get("project_path") or "."), run_params
        )
        for name in sorted(pipeline.inputs()):
            if name.startswith(PARAMS_PREFIX) or name not in catalog:
                continue
            dataset = catalog.get(name)
            check = getattr(dataset, "check_connection", None)
            if not callable(check):
                continue
            if hasattr(dataset, "credentials_file"):
                dataset.credentials_file = credentials_file
            try:
                check()
            except DatasetError as error:
                problems.append(f"{name}: {error}")
        if problems:
            # Not chained: each driver's error is already in the message, its password redacted.
            raise DatasetError("\n".join(problems))


def _credentials_file(project: Path, run_params: dict) -> str:
    """The credentials file of the run's environment, or the base one when that environment has none."""
    env = run_params.get("env") or "local"
    for folder in (env, "base"):
        if (project / "conf" / folder / "credentials.yml").is_file():
            return f"conf/{folder}/credentials.yml"
    return f"conf/{env}/credentials.yml"


def file_outputs(pipeline: Pipeline, catalog: DataCatalog) -> dict[str, Path]:
    """Dataset name -> absolute local path of every file or folder the pipeline writes."""
    outputs = {}
    for name in sorted(pipeline.all_outputs()):
        if name.startswith(PARAMS_PREFIX) or name not in catalog:
            continue
        dataset = catalog.get(name)
        path = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
        if isinstance(dataset, MemoryDataset) or path is None:
            continue
        if getattr(dataset, "_protocol", "file") not in ("file", None):
            continue
        outputs[name] = Path(str(path)).absolute()
    return outputs


class RunLockHook:
    """Locks the run's file outputs before its first node (``deep_learning_workflow.run_lock``) and removes the
    staging leftovers of killed saves beside them; lets go when the run ends, however it ends."""

    def __init__(self) -> None:
        self._lock: RunLock | None = None
        self._settings = RunLockSettings()
        self._project = Path.cwd()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project = Path(context.project_path)
        loader = context.config_loader
        loader.config_patterns.setdefault(RUN_LOCK_CONFIG, [f"{RUN_LOCK_CONFIG}*"])
        try:
            config = loader[RUN_LOCK_CONFIG]
        except MissingConfigException:
            config = {}
        try:
            self._settings = RunLockSettings.model_validate(config or {})
        except ValueError as error:
            raise ValueError(f"conf/<env>/{RUN_LOCK_CONFIG}.yml is invalid: {error}") from None

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        self._release()
        self._lock = RunLock(self._project, file_outputs(pipeline, catalog), self._settings)
        self._lock.acquire()
        self._lock.remove_staging_leftovers()

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class RunRecordHook:
    """Stamps the serving bundle, as it is saved, with the export time, the package versions and the git commit,
    so that the node that builds it reads neither the clock nor the environment."""

    def __init__(self) -> None:
        self._project = Path.cwd()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project = Path(context.project_path)

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if type(data).__name__ != "ServingBundle" or not isinstance(
            getattr(data, "metadata", None), dict
        ):
            return
        import deep_learning_workflow

        versions = package_versions()
        versions["deep_learning_workflow"] = deep_learning_workflow.__version__
        data.metadata.update(
            {
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": versions,
                "git_commit": git_commit(self._project),
            }
        )


class MlflowRunHook:
    """kedro-mlflow's hook, imported only once the parameters are valid and the run lock is held.

    MLflow takes seconds to import and to open its store; loaded as a plugin it would run before any check, so a
    misspelt parameter would wait for it. settings.py turns the plugin's own registration off and registers this
    hook instead, which hands every call on to a fresh ``MlflowHook`` from ``before_pipeline_run``. Before the run
    starts, runs of this experiment that a killed process left RUNNING are marked KILLED; the new run is tagged with
    its process and the git commit.
    """

    # Registered under the name of kedro-mlflow's entry point, so that pluggy does not load (and import MLflow
    # for) the plugin's own hook at start-up.
    __name__ = "mlflow_hook"

    def __init__(self) -> None:
        self._hook: Any = None
        self._context: Any = None
        self._catalog_args: dict[str, Any] | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._context, self._hook, self._catalog_args = context, None, None

    @hook_impl
    def after_catalog_created(  # noqa: PLR0913 - the hook specification's arguments
        self,
        catalog: Any,
        conf_catalog: dict[str, Any],
        conf_creds: dict[str, Any],
        parameters: dict[str, Any],
        save_version: str,
        load_versions: dict[str, str],
    ) -> None:
        self._catalog_args = {
            "catalog": catalog,
            "conf_catalog": conf_catalog,
            "conf_creds": conf_creds,
            "parameters": parameters,
            "save_version": save_version,
            "load_versions": load_versions,
        }

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        import mlflow
        from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

        self._hook = MlflowHook()
        self._hook.after_context_created(self._context)
        if self._catalog_args is not None:
            self._hook.after_catalog_created(**self._catalog_args)
        experiment = self._hook.mlflow_config.tracking.experiment._experiment
        if experiment is not None:
            mark_killed_runs(mlflow.tracking.MlflowClient(), experiment.experiment_id)
        self._hook.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        if getattr(self._hook, "_is_mlflow_enabled", False) and mlflow.active_run():
            me = current_process()
            mlflow.set_tags(
                {
                    "git_commit": git_commit(Path(self._context.project_path)),
                    "process.pid": me["pid"],
                    "process.host": me["host"],
                    "process.started": me["started"],
                }
            )

    @hook_impl
    def before_node_run(
        self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool
    ) -> None:
        if self._hook is not None:
            self._hook.before_node_run(node=node, catalog=catalog, inputs=inputs, is_async=is_async)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        if self._hook is not None:
            self._hook.after_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict, pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        if self._hook is not None:
            self._hook.on_pipeline_error(
                error=error, run_params=run_params, pipeline=pipeline, catalog=catalog
            )


def mark_killed_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs of the experiment whose process (tagged at their start) is gone."""
    killed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if "process.pid" not in tags:
            continue
        record = {
            "pid": tags["process.pid"],
            "host": tags.get("process.host"),
            "started": tags.get("process.started"),
        }
        if not is_alive(record):
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
            logger.warning(
                "Marked MLflow run %s KILLED: its process (pid %s) is gone.",
                run.info.run_id,
                record["pid"],
            )
    return killed
