"""Project hooks."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog, DatasetError
from kedro.pipeline import Pipeline

# The shared parameter blocks register their schemas on import; each pipeline's nodes register their own.
from deep_learning_workflow import columns, problem  # noqa: F401
from deep_learning_workflow.parameters import validate_parameters

PARAMS_PREFIX = "params:"


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
        for name in sorted(pipeline.inputs()):
            if name.startswith(PARAMS_PREFIX) or name not in catalog:
                continue
            check = getattr(catalog.get(name), "check_connection", None)
            if not callable(check):
                continue
            try:
                check()
            except DatasetError as error:
                problems.append(f"{name}: {error}")
        if problems:
            # Not chained: each driver's error is already in the message, its password redacted.
            raise DatasetError("\n".join(problems))
