"""Project settings. See https://docs.kedro.org/en/stable/configure/configuration_basics/."""

import os

# MLflow would otherwise send usage data over the network whenever kedro-mlflow starts a run.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


from deep_learning_workflow.environments import TableSpecificKeysHook
from deep_learning_workflow.hooks import (
    CheckConnectionsHook,
    MlflowRunHook,
    RunLockHook,
    RunRecordHook,
    ValidateParametersHook,
)
from deep_learning_workflow.run_summary import RunSummaryHook

# Hooks of one stage are called last-registered first: an environment that leaves a Telco-specific key unset stops
# the run first, then parameters are validated, then the outputs locked, then the databases contacted, and only
# then is MLflow imported and its run started.
HOOKS = (
    MlflowRunHook(),
    RunRecordHook(),
    CheckConnectionsHook(),
    RunLockHook(),
    ValidateParametersHook(),
    TableSpecificKeysHook(),
    RunSummaryHook(),
)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides one nested key without wiping its siblings.
    "merge_strategy": {"parameters": "soft"},
}
