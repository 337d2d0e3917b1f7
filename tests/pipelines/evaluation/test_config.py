"""The evaluation's configuration: parameters validate in every environment, the scenarios file fits the columns,
and test runs track into their own store and keep their own release record."""

from __future__ import annotations

import subprocess

import pytest
from kedro.config import OmegaConfigLoader

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.evaluation.schema import (
    EvaluationParameters,
    ReleaseScenarios,
)
from deep_learning_workflow.problem import ProblemDefinition


def _loader(project_path, env: str) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        conf_source=str(project_path / "conf"),
        base_env="base",
        default_run_env=env,
        env=env,
        merge_strategy={"parameters": "soft"},
        config_patterns={"mlflow": ["mlflow*", "mlflow*/**"]},
    )


@pytest.mark.parametrize("env", ["base", "test"])
def test_parameters_validate(project_path, env):
    params = _loader(project_path, env)["parameters"]
    evaluation = parse(EvaluationParameters, params["evaluation"], "evaluation")
    problem = parse(ProblemDefinition, params["problem"], "problem")
    validate_parameters({"evaluation": params["evaluation"], "problem": params["problem"]})
    assert evaluation.threshold.rule == "min_expected_cost"
    assert problem.costs is not None and problem.success.metric == problem.primary_metric
    assert (
        evaluation.release_gate.floors
    )  # the soft merge keeps base values the test env does not touch
    assert evaluation.bootstrap.resamples == (1000 if env == "base" else 100)


def test_release_scenarios_name_only_feature_columns(project_path, release_scenarios):
    scenarios = parse(ReleaseScenarios, release_scenarios, "release_scenarios")
    features = set(ColumnRoles(**_loader(project_path, "base")["parameters"]["columns"]).features)
    assert set(scenarios.defaults) == features
    for scenario in scenarios.scenarios:
        named = (
            set(scenario.record).union(*scenario.steps) if scenario.steps else set(scenario.record)
        )
        assert named <= features, scenario.name


def _ignored(project_path, relative: str) -> bool:
    result = subprocess.run(["git", "check-ignore", "-q", relative], cwd=project_path, check=False)
    if result.returncode not in (0, 1):
        pytest.skip("not a git checkout")
    return result.returncode == 0


def test_tracking_is_local_and_test_runs_use_their_own_store(project_path):
    base = _loader(project_path, "base")["mlflow"]
    test = _loader(project_path, "test")["mlflow"]
    for config in (base, test):
        assert config["server"]["mlflow_tracking_uri"].startswith("sqlite:///")
        assert config["tracking"]["params"]["long_params_strategy"] == "tag"
    base_store = base["server"]["mlflow_tracking_uri"].removeprefix("sqlite:///")
    test_store = test["server"]["mlflow_tracking_uri"].removeprefix("sqlite:///")
    assert test_store != base_store
    assert test["tracking"]["experiment"]["name"] != base["tracking"]["experiment"]["name"]
    for path in (
        base_store,
        test_store,
        base["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] + "/x",
        test["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] + "/x",
    ):
        assert _ignored(project_path, path), path


def test_test_runs_keep_their_own_release_record(project_path):
    def paths(env: str) -> set[str]:
        catalog = _loader(project_path, env)["catalog"]
        return {
            catalog["previous_release"]["filepath"],
            catalog["release_record"]["dataset"]["filepath"],
        }

    base, test = paths("base"), paths("test")
    assert len(base) == 1 and len(test) == 1  # the gate reads the record the previous run wrote
    assert base != test
