"""Project settings. See https://docs.kedro.org/en/stable/configure/configuration_basics/."""

import os

# MLflow would otherwise send usage data over the network whenever kedro-mlflow starts a run.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


from deep_learning_workflow.distribution_hooks import MultiWorkerHook
from deep_learning_workflow.environments import TableSpecificKeysHook
from deep_learning_workflow.hooks import (
    CheckConnectionsHook,
    MlflowRunHook,
    RunLockHook,
    RunRecordHook,
    ValidateParametersHook,
)
from deep_learning_workflow.parallel_hooks import ShareMemoryDatasetsHook
from deep_learning_workflow.pipelines.splitting.hooks import CheckSplitSizesHook
from deep_learning_workflow.run_checks import CheckRawFilesHook
from deep_learning_workflow.run_summary import RunSummaryHook
from deep_learning_workflow.tracking_hooks import TrackingHook

# Hooks of one stage are called last-registered first: missing raw files and an environment that leaves a
# Telco-specific key unset stop the run first, then parameters are validated, then a table too small to split
# stops the run, then the outputs are locked, then the databases contacted, and only then is MLflow imported and its run started.
# Last, a run training on several machines creates its TensorFlow strategy (waiting for every worker of TF_CONFIG).
HOOKS = (
    MultiWorkerHook(),
    MlflowRunHook(),
    RunRecordHook(),
    TrackingHook(),
    ShareMemoryDatasetsHook(),
    CheckConnectionsHook(),
    RunLockHook(),
    CheckSplitSizesHook(),
    ValidateParametersHook(),
    TableSpecificKeysHook(),
    CheckRawFilesHook(),
    RunSummaryHook(),
)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides one nested key without wiping its siblings.
    "merge_strategy": {"parameters": "soft"},
}
