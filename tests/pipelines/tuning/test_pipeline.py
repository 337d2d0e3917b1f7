"""The tuning pipeline: the search on an in-memory catalog, its wiring into the tuned modelling and evaluation,
its configuration, and the rule that only evaluation's final node reads the test split."""

from __future__ import annotations

from pathlib import Path

import optuna
import plotly.graph_objects as go
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from optuna.trial import TrialState

from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.evaluation import create_pipeline as create_evaluation
from deep_learning_workflow.pipelines.evaluation.pipeline import (
    TEST_EVALUATION_NODE,
    create_validation_pipeline,
)
from deep_learning_workflow.pipelines.modelling import create_pipeline as create_modelling
from deep_learning_workflow.pipelines.tuning import create_pipeline
from deep_learning_workflow.pipelines.tuning.data import gather_tuning_data
from deep_learning_workflow.pipelines.tuning.nodes import run_study
from deep_learning_workflow.pipelines.tuning.pipeline import (
    TUNED_MODELLING_PARAMS,
    create_search_pipeline,
)
from deep_learning_workflow.pipelines.tuning.search_space import merge_overrides
from tests.config_files import read_base_yaml

from .helpers import MODELLING, PROBLEM, ROLES, splits, tuning_params


@pytest.mark.slow
def test_search_pipeline_finds_judges_and_records_the_best_parameters(tmp_path):
    frames = splits()
    tuning = tuning_params(n_trials=2, study_name="search", selection={"top_k": 1, "seeds": 2})
    storage = OptunaStorageDataset(credentials={"con": f"sqlite:///{tmp_path}/optuna/study.db"})
    catalog = DataCatalog(
        {
            "tuning_storage": storage,
            "tuning_study": MemoryDataset(copy_mode="assign"),
            "best_params": JSONDataset(filepath=str(tmp_path / "best_params.json")),
            "tuning_candidates": JSONDataset(filepath=str(tmp_path / "candidates.json")),
            **{name: MemoryDataset(frame) for name, frame in frames.items()},
            "params:columns": MemoryDataset(ROLES),
            "params:modelling": MemoryDataset(MODELLING),
            "params:problem": MemoryDataset(PROBLEM),
            "params:tuning": MemoryDataset(tuning),
            "params:seed": MemoryDataset(42),
        }
    )
    SequentialRunner().run(create_search_pipeline(), catalog)

    trials = catalog.load("tuning_trials")
    assert list(trials["number"]) == [0, 1] and set(trials["state"]) == {"COMPLETE"}
    best = catalog.load("best_params")
    assert best["study_name"] == "search" and best["metric"] == "pr_auc"
    # A family's own keys (plr.*, tabm.*) are drawn only by the trials that choose that family.
    space = set(tuning["search_space"])
    assert set(best["params"]) <= space
    assert {key for key in space if not key.startswith(("plr.", "tabm."))} <= set(best["params"])
    assert best["trial"] in (0, 1)
    judged = best["validation"]
    assert judged["seeds"] == [42, 43] and len(judged["values"]) == 2
    # The modelling parameters average the seeds: a candidate is judged as the mean of its seeds' probabilities.
    assert judged["score"] == pytest.approx(judged["ensemble_value"])
    assert best["validation_selection_bias"] is True and best["selected_from_candidates"] == 1
    winner = trials.loc[trials["number"] == best["trial"]].iloc[0]
    assert judged["search_value"] == pytest.approx(winner["value"])
    tuned = catalog.load(TUNED_MODELLING_PARAMS)
    # Dotted keys (tabm.members) reach inside their section; a family not chosen keeps no section.
    assert tuned == merge_overrides(MODELLING, best["params"])
    assert all(
        tuned[path.split(".")[0]][path.split(".")[1]] == value
        if "." in path
        else tuned[path] == value
        for path, value in best["params"].items()
    )
    parse(ModellingParams, tuned, "modelling")
    for name in (
        "optimisation_history",
        "parameter_importances",
        "parallel_coordinates",
        "intermediate_values",
    ):
        figure = catalog.load(f"tuning_{name}_plot")
        assert isinstance(figure, go.Figure) and figure.data, name

    # A re-run resumes the study: it is full, so no trial is added and none is recomputed.
    before = {
        t.number: (t.value, t.datetime_complete)
        for t in optuna.load_study(storage=storage.load().storage, study_name="search").trials
    }
    study = run_study(
        storage.load(),
        gather_tuning_data(frames["train"], frames["train_balanced"], frames["val"], ROLES),
        MODELLING,
        PROBLEM,
        tuning,
        42,
    )
    assert {t.number: (t.value, t.datetime_complete) for t in study.trials} == before
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_a_worker_run_by_the_study_tag_needs_only_catalog_inputs():
    """``kedro run --pipelines tuning --tags tuning_study`` on each worker: the tagged nodes gather their own data."""
    tagged = create_pipeline().only_nodes_with_tags("tuning_study")
    assert {node.name for node in tagged.nodes} == {"gather_tuning_data", "run_study"}
    assert tagged.inputs() == {
        "tuning_storage",
        "train",
        "train_balanced",
        "val",
        "params:columns",
        "params:modelling",
        "params:problem",
        "params:tuning",
        "params:seed",
    }


def test_tuning_never_takes_the_test_split():
    search = create_search_pipeline()
    assert "test" not in search.all_inputs()
    assert "test" not in create_pipeline().all_inputs()
    assert [n.name for n in create_evaluation().nodes if "test" in n.inputs] == [
        TEST_EVALUATION_NODE
    ]


def test_tuned_modelling_and_evaluation_are_the_shared_nodes_under_a_namespace():
    search, full = create_search_pipeline(), create_pipeline()
    modelling, evaluation = create_modelling(), create_validation_pipeline()
    tuned = [n for n in full.nodes if n not in search.nodes]
    # One node of its own: the tuned model's metadata records that it was selected on validation.
    (record,) = [n for n in tuned if n.name == "tuned.record_tuning_selection"]
    assert record.inputs == ["tuned.model_metadata_before_selection", "best_params"]
    assert record.outputs == ["tuned.model_metadata"]
    tuned = [n for n in tuned if n is not record]
    assert sorted(n.name for n in tuned) == sorted(
        f"tuned.{n.name}" for n in modelling.nodes + evaluation.nodes
    )
    assert all(n.namespace == "tuned" for n in tuned)
    by_name = {n.name: n for n in modelling.nodes + evaluation.nodes}
    for node in tuned:
        assert node.func is by_name[node.name.removeprefix("tuned.")].func
    takes_modelling = [n for n in tuned if TUNED_MODELLING_PARAMS in n.inputs]
    assert {n.name for n in takes_modelling} == {
        f"tuned.{n.name}"
        for n in modelling.nodes + evaluation.nodes
        if "params:modelling" in n.inputs
    }
    assert "params:modelling" not in {i for n in tuned for i in n.inputs}
    shared = (modelling.inputs() | evaluation.inputs()) - modelling.all_outputs()
    assert full.inputs() - search.inputs() <= shared
    own = {o for n in tuned for o in n.outputs} - {"tuned.model_metadata_before_selection"}
    assert own | {"tuned.model_metadata"} == {
        f"tuned.{o}" for o in modelling.all_outputs() | evaluation.all_outputs()
    }


def _config(project_path: Path, env: str) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        str(project_path / "conf"),
        base_env="base",
        default_run_env=env,
        merge_strategy={"parameters": "soft"},
    )


def _layer(entry: dict) -> str | None:
    return ((entry.get("metadata") or {}).get("kedro-viz") or {}).get("layer")


def _inner(entry: dict) -> dict:
    return entry.get("dataset", entry)


def test_catalog_declares_a_tuned_twin_of_every_persisted_output(project_path):
    catalog = _config(project_path, "base")["catalog"]
    ours = yaml.safe_load((project_path / "conf/base/catalog_tuning.yml").read_text())
    outputs = create_modelling().all_outputs() | create_validation_pipeline().all_outputs()
    # In-memory intermediates are covered by the catalog's "{namespace}.<name>" patterns instead.
    persisted = {
        name for name in outputs & set(catalog) if catalog[name]["type"] != "MemoryDataset"
    }
    for name in sorted(persisted):
        twin = ours.get(f"tuned.{name}")
        assert twin is not None, f"catalog_tuning.yml lacks tuned.{name}"
        assert twin["type"] == catalog[name]["type"], name
        assert _inner(twin).get("type") == _inner(catalog[name]).get("type"), name
        assert _layer(twin) == _layer(catalog[name]), (
            f"tuned.{name} sits in another kedro-viz layer"
        )
        path = _inner(twin).get("filepath")
        assert path is None or "/tuned/" in path, name
    declared = {name for name in ours if not name.startswith("_")}
    assert declared <= create_pipeline().all_outputs() | {"tuning_storage"}


@pytest.mark.parametrize("env", ["base", "test"])
def test_configuration_builds_and_validates(project_path, env):
    loader = _config(project_path, env)
    validate_parameters({"tuning": loader["parameters"]["tuning"]})
    settings = loader["parameters"]["tuning"]
    assert settings["n_trials"] == (20 if env == "base" else 2)
    entries = {
        k: v
        for k, v in loader["catalog"].items()
        if k in create_search_pipeline().all_outputs() | {"tuning_storage"}
    }
    entries["tuning_storage"]["credentials"] = {"con": "sqlite:///data/06_models/optuna/study.db"}
    catalog = DataCatalog.from_config(entries)
    assert catalog["tuning_storage"].location == "sqlite:///data/06_models/optuna/study.db"
    assert entries["best_params"]["filepath"] == "data/08_reporting/best_params.json"
    assert entries["best_params"]["versioned"] is True


def test_default_storage_is_the_embedded_sqlite_file(project_path):
    credentials = read_base_yaml(project_path, "credentials.yml")
    assert credentials["tuning_storage"]["con"] == "sqlite:///data/06_models/optuna/study.db"
