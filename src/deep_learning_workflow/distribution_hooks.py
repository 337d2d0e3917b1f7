"""Training on several machines: the TensorFlow strategy is created before the first node of a run.

``tf.distribute.MultiWorkerMirroredStrategy`` must be created before any other TensorFlow operation of the process:
the sanity check, a baseline or a preprocessing layer would otherwise have started TensorFlow's runtime and the
strategy could no longer set up the workers' collective communication. So when ``params:modelling.distribution``
is ``multi_worker_mirrored``, this hook creates the strategy in ``before_pipeline_run``, after the parameters are
validated and before any node runs; :func:`deep_learning_workflow.models.fitting.distribution_strategy` then hands
the same strategy to training. With any other distribution the hook does nothing (TensorFlow is not imported).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

MODELLING_PARAMS = "params:modelling"


class MultiWorkerHook:
    """Creates the multi-worker strategy before the first node when the run trains with it."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        if MODELLING_PARAMS not in pipeline.inputs():
            return
        modelling = catalog.load(MODELLING_PARAMS) or {}
        if modelling.get("distribution") != "multi_worker_mirrored":
            return
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "params:modelling.distribution is multi_worker_mirrored, but the TF_CONFIG environment variable "
                "is not set: start every worker with its TF_CONFIG (docs/scaling.md, Training on several "
                "machines), or set distribution: default."
            )
        from deep_learning_workflow.models.fitting import multi_worker_strategy

        strategy = multi_worker_strategy()
        logger.info(
            "Training on %d replicas of a multi-worker cluster (TF_CONFIG).",
            strategy.num_replicas_in_sync,
        )
