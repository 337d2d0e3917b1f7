"""Project settings. See https://docs.kedro.org/en/stable/configure/configuration_basics/."""

import os

# MLflow would otherwise send usage data over the network whenever kedro-mlflow starts a run.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


from deep_learning_workflow.hooks import CheckConnectionsHook, ValidateParametersHook
from deep_learning_workflow.parallel_hooks import ShareMemoryDatasetsHook
from deep_learning_workflow.run_checks import CheckRawFilesHook
from deep_learning_workflow.tracking_hooks import TrackingHook

# Hooks of one stage are called last-registered first: parameters are validated before any database is contacted.
HOOKS = (
    CheckConnectionsHook(),
    ValidateParametersHook(),
    TrackingHook(),
    ShareMemoryDatasetsHook(),
    CheckRawFilesHook(),
)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides one nested key without wiping its siblings.
    "merge_strategy": {"parameters": "soft"},
}
