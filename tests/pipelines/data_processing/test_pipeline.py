"""The data_processing pipeline run on an in-memory catalog, and its configuration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deep_learning_workflow.parameters import validate_parameters
from deep_learning_workflow.pipelines.data_processing import create_pipeline
from tests.config_files import read_base_yaml

OUTPUTS = [
    "clean_table",
    "cleaning_report",
    "eda_summary",
    "eda_class_balance",
    "eda_missing_values",
    "eda_numeric_distributions",
    "eda_categorical_frequencies",
    "eda_correlations",
]


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


class KeptDataset(MemoryDataset):
    """A memory dataset the runner cannot release, so a test can read intermediate outputs."""

    def _release(self) -> None:
        pass


def run(catalog_datasets: dict, parameters: dict) -> DataCatalog:
    datasets = {name: MemoryDataset(value) for name, value in catalog_datasets.items()}
    datasets |= {
        f"params:{key}": MemoryDataset(parameters[key]) for key in ("columns", "data_processing")
    }
    datasets |= {name: KeptDataset() for name in OUTPUTS}
    catalog = DataCatalog(datasets)
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_the_base_parameters_are_valid(parameters):
    validate_parameters(parameters)
    rules = {rule["column"]: rule for rule in parameters["data_processing"]["rules"]}
    assert rules["churn"]["allowed"] == ["No", "Yes"]  # quoted, so YAML did not read booleans


def test_pipeline_cleans_a_messy_telco_sample_and_reports_it(parameters, telco):
    sample = telco.sample(300, random_state=1).reset_index(drop=True)
    messy = pd.concat([sample, sample.iloc[:4]], ignore_index=True)  # 4 exact duplicates
    messy["contract"] = messy["contract"].astype(object)
    messy.loc[10, "tenure"] = -3  # dropped by "tenure >= 0"
    messy.loc[11, "churn"] = None  # dropped: no target
    messy.loc[12, "contract"] = "Three year"  # not allowed: set missing
    messy.loc[13, "payment_method"] = "  Mailed check "  # stripped, then allowed

    catalog = run({"acquired_table": messy}, parameters)

    clean = catalog.load("clean_table")
    report = catalog.load("cleaning_report")
    assert len(clean) == 298
    assert clean["customer_id"].is_unique
    assert report["rows_in"] == 304 and report["rows_out"] == 298
    assert report["rows_dropped"]["exact_duplicate"] == 4
    assert report["rows_dropped"]["rule: tenure >= 0"] == 1
    assert report["rows_dropped"]["missing_target"] == 1
    assert report["values_set_missing"]["rule: contract in allowed values"] == {"contract": 1}
    row = clean.set_index("customer_id").loc[messy.loc[13, "customer_id"]]
    assert row["payment_method"] == "Mailed check"
    assert clean.loc[clean["customer_id"] == messy.loc[12, "customer_id"], "contract"].isna().all()

    summary = catalog.load("eda_summary")
    assert summary["rows"] == 298
    assert summary["class_counts"] == clean["churn"].value_counts().sort_index().to_dict()
    json.dumps(summary, allow_nan=False)
    for name in OUTPUTS[3:]:
        figure = catalog.load(name)
        assert isinstance(figure, go.Figure) and figure.data, name


def test_the_csv_passes_through_unchanged_but_typed(parameters, telco):
    catalog = run({"acquired_table": telco}, parameters)
    clean = catalog.load("clean_table")
    assert clean["customer_id"].tolist() == telco["customer_id"].tolist()
    np.testing.assert_array_equal(clean["monthly_charges"], telco["monthly_charges"])
    assert (clean["female"] == telco["female"].astype(str)).all()
    assert catalog.load("cleaning_report")["rows_dropped_total"] == 0


def test_catalog_entries_save_and_load_what_the_pipeline_makes(
    project_path, parameters, telco, tmp_path
):
    """Saves every output through the dataset types conf/base declares, with the file paths moved to tmp_path."""
    entries = read_base_yaml(project_path, "catalog_data_processing.yml")
    entries = {name: entry for name, entry in entries.items() if not name.startswith("_")}
    assert sorted(entries) == sorted(OUTPUTS)
    for name, entry in entries.items():
        assert entry["metadata"]["kedro-viz"]["layer"] in {"primary", "reporting"}, name
        assert entry["filepath"].startswith("data/"), name
        entry["filepath"] = str(tmp_path / entry["filepath"])
    assert entries["clean_table"]["filepath"].endswith("data/03_primary/clean_table.parquet")
    assert all("08_reporting" in entries[name]["filepath"] for name in OUTPUTS[1:])

    datasets = {"acquired_table": MemoryDataset(telco.sample(200, random_state=0))}
    datasets |= {
        f"params:{key}": MemoryDataset(parameters[key]) for key in ("columns", "data_processing")
    }
    catalog = DataCatalog.from_config(entries)
    for name, dataset in datasets.items():
        catalog[name] = dataset
    SequentialRunner().run(create_pipeline(), catalog)

    clean = catalog.load("clean_table")
    assert len(clean) == 200 and clean["total_charges"].dtype == "float64"
    assert pd.api.types.is_string_dtype(clean["churn"])
    assert catalog.load("eda_summary")["rows"] == 200
    assert isinstance(catalog.load("eda_correlations"), go.Figure)
    preview = catalog.get("eda_class_balance").preview()
    assert preview["data"][0]["type"] == "bar"
