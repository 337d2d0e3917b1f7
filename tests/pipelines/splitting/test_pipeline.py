"""The splitting pipeline run on an in-memory catalog, and its configuration."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deep_learning_workflow.parameters import validate_parameters
from deep_learning_workflow.pipelines.data_processing import create_pipeline as data_processing
from deep_learning_workflow.pipelines.data_processing.nodes import clean_acquired_table
from deep_learning_workflow.pipelines.splitting import create_pipeline
from tests.config_files import read_base_yaml

OUTPUTS = ["train", "val", "test", "train_balanced", "split_report"]
METHODS = ["none", "random_undersampling", "random_oversampling", "smote_nc"]


class KeptDataset(MemoryDataset):
    """A memory dataset the runner cannot release, so a test can read intermediate outputs."""

    def _release(self) -> None:
        pass


@pytest.fixture(scope="module")
def parameters(project_path) -> dict:
    loader = OmegaConfigLoader(
        str(project_path / "conf"),
        base_env="base",
        default_run_env="local",
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"]


@pytest.fixture(scope="module")
def telco(project_path) -> pd.DataFrame:
    return pd.read_csv(project_path / "data" / "01_raw" / "telco_churn.csv")


@pytest.fixture(scope="module")
def clean_sample(parameters, telco) -> pd.DataFrame:
    """800 clean Telco rows, some with missing numbers and categories (SMOTE-NC must cope)."""
    sample = telco.sample(800, random_state=5).reset_index(drop=True)
    sample["contract"] = sample["contract"].astype(object)
    sample.loc[sample.index % 37 == 0, "contract"] = None
    sample.loc[sample.index % 41 == 0, "monthly_charges"] = None
    clean, _ = clean_acquired_table(sample, parameters["columns"], parameters["data_processing"])
    return clean


def with_method(parameters: dict, method: str) -> dict:
    splitting = parameters["splitting"]
    return {
        **parameters,
        "splitting": {**splitting, "balancing": {**splitting["balancing"], "method": method}},
    }


def run(pipeline, inputs: dict, parameters: dict, outputs: list[str]) -> DataCatalog:
    datasets = {name: MemoryDataset(value) for name, value in inputs.items()}
    needed = {name for name in pipeline.inputs() if name.startswith("params:")}
    datasets |= {name: MemoryDataset(parameters[name.removeprefix("params:")]) for name in needed}
    datasets |= {name: KeptDataset() for name in outputs}
    catalog = DataCatalog(datasets)
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.fixture(scope="module")
def runs(clean_sample, parameters) -> dict[str, DataCatalog]:
    return {
        method: run(
            create_pipeline(),
            {"clean_table": clean_sample},
            with_method(parameters, method),
            OUTPUTS,
        )
        for method in METHODS
    }


def test_the_base_parameters_are_valid(parameters):
    validate_parameters(parameters)
    assert parameters["splitting"]["balancing"]["method"] == "none"
    assert isinstance(parameters["seed"], int)


def test_balancing_never_touches_validation_or_test(runs):
    for name in ("train", "val", "test"):
        reference = runs["none"].load(name)
        for method in METHODS[1:]:
            pd.testing.assert_frame_equal(
                runs[method].load(name), reference, obj=f"{name} with {method}"
            )


def test_only_the_training_split_is_resampled(runs, clean_sample):
    train = runs["none"].load("train")
    pd.testing.assert_frame_equal(runs["none"].load("train_balanced"), train)
    holdout = set(runs["none"].load("val")["customer_id"]) | set(
        runs["none"].load("test")["customer_id"]
    )
    for method in METHODS[1:]:
        balanced = runs[method].load("train_balanced")
        assert not set(balanced["customer_id"]) & holdout, method
        real = balanced[~balanced["customer_id"].str.startswith("synthetic-")]
        assert set(real["customer_id"]) <= set(train["customer_id"]), method
        ratio = balanced["churn"].value_counts(normalize=True)
        assert ratio["Yes"] == pytest.approx(0.5), method


def test_no_key_is_in_two_splits_and_ratios_hold(runs, clean_sample):
    catalog = runs["smote_nc"]
    keys = {name: set(catalog.load(name)["customer_id"]) for name in ("train", "val", "test")}
    assert not (
        keys["train"] & keys["val"] or keys["train"] & keys["test"] or keys["val"] & keys["test"]
    )
    assert set.union(*keys.values()) == set(clean_sample["customer_id"])
    overall = (clean_sample["churn"] == "Yes").mean()
    for name in ("train", "val", "test"):
        share = (catalog.load(name)["churn"] == "Yes").mean()
        assert share == pytest.approx(overall, abs=0.01), name


def test_the_split_report_describes_every_split(runs):
    report = runs["random_undersampling"].load("split_report")
    json.dumps(report, allow_nan=False)
    assert report["seed"] == 42 and report["classes"] == ["No", "Yes"]
    assert report["sizes_requested"] == {"train": 0.7, "val": 0.15, "test": 0.15}
    sizes = {name: report["splits"][name]["rows"] for name in ("train", "val", "test")}
    assert sum(sizes.values()) == report["splits"]["clean_table"]["rows"] == 800
    assert (
        report["balancing"]["rows_removed"]
        == sizes["train"] - report["splits"]["train_balanced"]["rows"]
    )
    assert report["splits"]["train_balanced"]["class_ratio"] == {"No": 0.5, "Yes": 0.5}


def test_the_pipelines_are_wired_as_the_contract_says():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {"clean_table", "params:columns", "params:splitting", "params:seed"}
    assert {"train", "val", "test", "train_balanced", "split_report"} <= pipeline.outputs() | set(
        pipeline.datasets()
    )
    balance = next(node for node in pipeline.nodes if node.name == "balance_training_split")
    assert "val" not in balance.inputs and "test" not in balance.inputs
    # the test split is read once, by the final evaluation node, so no node here may take it
    for node in [*pipeline.nodes, *data_processing().nodes]:
        assert "test" not in node.inputs, node.name


def test_catalog_entries_save_and_load_the_splits(project_path, clean_sample, parameters, tmp_path):
    entries = read_base_yaml(project_path, "catalog_splitting.yml")
    entries = {
        name: entry
        for name, entry in entries.items()
        if not name.startswith("_") and entry["type"] != "MemoryDataset"
    }
    assert sorted(entries) == sorted(OUTPUTS)
    for name in ("train", "val", "test", "train_balanced"):
        assert entries[name]["filepath"] == f"data/05_model_input/{name}.parquet"
        assert entries[name]["metadata"]["kedro-viz"]["layer"] == "model_input"
    assert entries["split_report"]["filepath"] == "data/08_reporting/split_report.json"
    for entry in entries.values():
        entry["filepath"] = str(tmp_path / entry["filepath"])

    catalog = DataCatalog.from_config(entries)
    params = with_method(parameters, "smote_nc")
    catalog["clean_table"] = MemoryDataset(clean_sample)
    for key in ("columns", "splitting", "seed"):
        catalog[f"params:{key}"] = MemoryDataset(params[key])
    SequentialRunner().run(create_pipeline(), catalog)
    balanced = catalog.load("train_balanced")
    assert balanced.dtypes.equals(clean_sample.dtypes)
    assert catalog.load("split_report")["balancing"]["method"] == "smote_nc"


def test_the_telco_csv_through_processing_and_splitting(parameters, telco):
    pipeline = data_processing() + create_pipeline()
    catalog = run(pipeline, {"acquired_table": telco}, parameters, [*OUTPUTS, "clean_table"])
    report = catalog.load("split_report")
    sizes = {name: report["splits"][name]["rows"] for name in ("train", "val", "test")}
    assert sizes == {"train": 4931, "val": 1056, "test": 1056}
    for name in ("train", "val", "test"):
        assert report["splits"][name]["class_ratio"]["Yes"] == pytest.approx(0.2654, abs=0.001)
    pd.testing.assert_frame_equal(catalog.load("train_balanced"), catalog.load("train"))
