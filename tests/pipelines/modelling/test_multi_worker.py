"""Training on two machines (params:modelling.distribution: multi_worker_mirrored), each a process on 127.0.0.1.

Each worker runs `kedro run --pipelines modelling` in its own copy of the project, as on its own machine, with its
TF_CONFIG; they train one model together. A third copy trains in one process. The two-worker model must reach the
one-process model's validation PR-AUC within TOLERANCE (the workers see the rows in another order and split each
batch between them, so the two models differ as two seeds do), and only the chief keeps a model file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_project, run_kedro
from tests.ports import free_port

TOLERANCE = 0.05
"""Largest difference of validation PR-AUC between the two-worker and the one-process model (Telco, test env)."""


def _pr_auc(project: Path) -> float:
    report = json.loads((project / "data" / "08_reporting" / "seed_report.json").read_text())
    return report["kept_validation"]["pr_auc"]


def _model_files(project: Path) -> list[Path]:
    return sorted((project / "data" / "06_models").glob("model.keras/*/model.keras"))


@pytest.mark.slow
def test_two_workers_train_one_model_as_good_as_one_process_and_only_the_chief_saves_it(
    project_path, tmp_path
):
    (tmp_path / "single").mkdir()
    single = copy_project(project_path, tmp_path / "single")
    prepared = run_kedro(
        single, "run", "--env", "test", "--pipelines", "data_acquisition,data_processing,splitting"
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    workers = []
    for index in range(2):
        folder = tmp_path / f"worker{index}"
        folder.mkdir()
        worker = copy_project(project_path, folder)
        shutil.copytree(single / "data" / "05_model_input", worker / "data" / "05_model_input")
        workers.append(worker)

    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", "--env", "test", "--pipelines", "modelling"]
            + ["--params", "modelling.distribution=multi_worker_mirrored"],
            cwd=worker,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "KEDRO_DISABLE_TELEMETRY": "1",
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                ),
            },
        )
        for i, worker in enumerate(workers)
    ]
    try:
        outcomes = [process.communicate(timeout=900) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (_, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr[-4000:]

    alone = run_kedro(single, "run", "--env", "test", "--pipelines", "modelling")
    assert alone.returncode == 0, alone.stderr[-3000:]

    chief, other = workers
    assert len(_model_files(chief)) == 1
    assert _model_files(other) == []
    assert _pr_auc(chief) == pytest.approx(_pr_auc(single), abs=TOLERANCE)
    # Both workers trained the same weights, so they report the same validation scores.
    assert _pr_auc(other) == pytest.approx(_pr_auc(chief), abs=1e-6)


class _Catalog:
    def __init__(self, modelling: dict) -> None:
        self.modelling = modelling

    def load(self, name: str) -> dict:
        assert name == "params:modelling"
        return self.modelling


class _Pipeline:
    def inputs(self) -> set[str]:
        return {"params:modelling", "train_split"}


def test_a_multi_worker_run_without_tf_config_stops_before_any_node(monkeypatch):
    from deep_learning_workflow.distribution_hooks import MultiWorkerHook

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable is not set"):
        MultiWorkerHook().before_pipeline_run(
            {}, _Pipeline(), _Catalog({"distribution": "multi_worker_mirrored"})
        )


def test_the_hook_leaves_a_run_on_one_machine_alone(monkeypatch):
    from deep_learning_workflow.distribution_hooks import MultiWorkerHook
    from deep_learning_workflow.models.fitting import multi_worker_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    MultiWorkerHook().before_pipeline_run({}, _Pipeline(), _Catalog({"distribution": "default"}))
    assert multi_worker_strategy.cache_info().currsize == 0


def test_multi_worker_training_with_augmentation_is_refused_before_any_node():
    from deep_learning_workflow.parameters import validate_parameters

    from .conftest import modelling_params

    params = modelling_params(
        distribution="multi_worker_mirrored", augmentation={"gaussian_noise_std": 0.1}
    )
    with pytest.raises(ValueError, match="multi_worker_mirrored trains without augmentation"):
        validate_parameters({"modelling": params})
