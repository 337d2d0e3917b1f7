"""One tuning worker process: ``python worker.py CONFIG.json`` runs the tuning pipeline's study node.

CONFIG holds the storage URL and heartbeat settings, ``params:tuning`` and ``params:modelling``, and optionally a
``ready`` file to create once started and a ``go`` file to wait for, so that workers start their trials together.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import PROBLEM, ROLES, splits  # noqa: E402

from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset  # noqa: E402
from deep_learning_workflow.pipelines.tuning.data import gather_tuning_data
from deep_learning_workflow.pipelines.tuning.nodes import run_study  # noqa: E402


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    frames = splits()
    storage = OptunaStorageDataset(
        credentials={"con": config["url"]},
        heartbeat_interval=config["heartbeat_interval"],
        grace_period=config["grace_period"],
    ).load()
    import keras  # noqa: F401 - started before the barrier, so workers begin their trials together

    if config.get("ready"):
        Path(config["ready"]).touch()
    if config.get("go"):
        while not Path(config["go"]).exists():
            time.sleep(0.05)
    run_study(
        storage,
        gather_tuning_data(frames["train"], frames["train_balanced"], frames["val"], ROLES),
        config["modelling"],
        PROBLEM,
        config["tuning"],
        config.get("seed", 42),
    )


if __name__ == "__main__":
    main(sys.argv[1])
