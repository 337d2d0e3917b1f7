"""The data_acquisition pipeline on an in-memory catalog: the demo, every source on, and a run that must stop."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deep_learning_workflow.datasets.web_api import WebAPIDataset
from deep_learning_workflow.datasets.web_pages import WebPagesDataset
from deep_learning_workflow.pipelines.data_acquisition import create_pipeline
from deep_learning_workflow.pipelines.data_acquisition.nodes import pseudonymise

from .conftest import FAST_HTTP, html_answer, json_answer

RAW = ("raw_customers", "raw_billing", "raw_annotations")
OUTPUTS = ("acquired_table", "acquisition_report", "annotation_report")


class KeptDataset(MemoryDataset):
    """A memory dataset the runner cannot release, so a test can read the outputs."""

    def _release(self) -> None:
        pass


@pytest.fixture(scope="module")
def raw(catalog_config, sqlite_credentials) -> dict[str, pd.DataFrame]:
    """The raw inputs, read through their catalog entries."""
    catalog = DataCatalog.from_config(
        {name: catalog_config[name] for name in RAW}, credentials=sqlite_credentials
    )
    return {name: catalog.load(name) for name in RAW}


def run(
    raw: dict[str, pd.DataFrame],
    parameters: dict,
    columns: dict,
    salt: str | None = None,
    **sources: WebAPIDataset | WebPagesDataset,
) -> DataCatalog:
    datasets = {name: MemoryDataset(frame) for name, frame in raw.items()}
    datasets["deidentification_salt"] = MemoryDataset(salt)
    datasets["api_source"] = sources.get("api_source") or WebAPIDataset(url=None)
    datasets["web_source"] = sources.get("web_source") or WebPagesDataset(urls=[])
    datasets |= {
        "params:data_acquisition": MemoryDataset(parameters),
        "params:columns": MemoryDataset(columns),
    }
    datasets |= {name: KeptDataset() for name in OUTPUTS}
    catalog = DataCatalog(datasets)
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_demo_acquisition_rebuilds_the_published_table(raw, settings, columns, telco):
    catalog = run(raw, settings(), columns)

    acquired = catalog.load("acquired_table")
    assert list(acquired.columns) == list(telco.columns)
    assert acquired.dtypes.to_dict() == telco.dtypes.to_dict()
    pd.testing.assert_frame_equal(
        acquired.sort_values("customer_id", ignore_index=True),
        telco.sort_values("customer_id", ignore_index=True),
    )
    report = catalog.load("acquisition_report")
    assert report["base"]["rows"] == 7043
    assert report["sources"]["database"]["matched_base_rows"] == 7043
    assert report["sources"]["database"]["unmatched_source_rows"] == 0
    assert not any(report["sources"][name]["enabled"] for name in ("api", "web", "crowd"))
    assert report["acquired_table"]["rows"] == 7043
    json.dumps(report)  # the report is plain JSON


def test_every_source_on_joins_labels_and_pseudonymises(raw, serve, settings, columns, telco):
    api = serve(
        lambda handler: json_answer(
            json.dumps(
                {
                    "items": [
                        {"customer_id": "C00002", "satisfaction": 4},
                        {"customer_id": "C00003", "satisfaction": 2},
                    ]
                }
                if "page=1&" in handler.path
                else {"items": []}
            )
        )
    )
    page = """<table class="reviews"><tr><th>customer</th><th>stars</th></tr>
              <tr><td>C00001</td><td>5</td></tr><tr><td>C07043</td><td>1</td></tr></table>"""
    web = serve(lambda handler: html_answer(page) if handler.path == "/reviews" else (404, {}, b""))
    salt = "test-salt-for-pseudonyms"
    api_source = WebAPIDataset(url=f"{api.url}/customers", records_path="items", http=FAST_HTTP)
    web_source = WebPagesDataset(
        urls=[f"{web.url}/reviews"],
        table_selector="table.reviews",
        rename={"customer": "customer_id", "stars": "stars"},
        dtypes={"stars": "float64"},
        http=FAST_HTTP,
    )
    parameters = settings(
        sources={"crowd": {"enabled": True}},
        dtypes={"satisfaction": "float64", "stars": "float64"},
        sensitive={"hash": ["customer_id"], "drop": ["female"]},
    )

    catalog = run(raw, parameters, columns, salt, api_source=api_source, web_source=web_source)

    acquired = catalog.load("acquired_table")
    report = catalog.load("acquisition_report")
    annotations = catalog.load("annotation_report")
    assert len(acquired) == 7043 and acquired["customer_id"].is_unique
    assert "female" not in acquired
    keys = pseudonymise(telco["customer_id"], salt)
    by_key = acquired.set_index("customer_id")
    assert by_key.loc[keys[1], "satisfaction"] == 4 and by_key.loc[keys[2], "satisfaction"] == 2
    assert by_key.loc[keys[0], "stars"] == 5 and by_key.loc[keys[7042], "stars"] == 1
    assert acquired["satisfaction"].notna().sum() == 2 and acquired["stars"].notna().sum() == 2
    sources = report["sources"]
    assert sources["api"]["matched_base_rows"] == 2 and sources["api"]["provenance"]["rows"] == 2
    assert sources["web"]["matched_base_rows"] == 2
    assert sources["web"]["provenance"]["urls"] == [f"{web.url}/robots.txt", f"{web.url}/reviews"]
    # the unflagged crowd labels now are the target of their rows; every other row keeps the file's target
    assert sources["crowd"]["matched_base_rows"] == annotations["labelled_items"]
    assert 0 < sources["crowd"]["changed_targets"] < annotations["labelled_items"] / 10
    changed = (acquired["churn"].to_numpy() != telco["churn"].to_numpy()).sum()
    assert changed == sources["crowd"]["changed_targets"]
    assert report["deidentification"]["hashed"] == ["customer_id"]
    assert "pseudonymisation" in report["deidentification"]["method"]


def test_an_invalid_table_stops_the_run_before_anything_is_written(raw, settings, columns):
    broken = dict(raw)
    broken["raw_customers"] = raw["raw_customers"].assign(
        churn="No", tenure=raw["raw_customers"]["tenure"] * 1.0
    )

    with pytest.raises(ValueError, match="fails validation") as error:
        run(broken, settings(), columns)

    message = str(error.value)
    assert "target 'churn' has 1 class(es) ['No']" in message
    assert "column 'tenure' has dtype float64, expected int64" in message


def test_nothing_is_saved_when_acquisition_fails(raw, settings, columns):
    datasets = {name: MemoryDataset(frame) for name, frame in raw.items()}
    datasets["raw_billing"] = MemoryDataset(
        pd.concat([raw["raw_billing"], raw["raw_billing"].iloc[:1]])
    )
    datasets["deidentification_salt"] = MemoryDataset(None)
    datasets["api_source"] = WebAPIDataset(url=None)
    datasets["web_source"] = WebPagesDataset(urls=[])
    datasets |= {
        "params:data_acquisition": MemoryDataset(settings()),
        "params:columns": MemoryDataset(columns),
    }
    datasets |= {name: KeptDataset() for name in OUTPUTS}
    catalog = DataCatalog(datasets)

    with pytest.raises(
        ValueError, match=r"Source 'database' \(raw_billing\) has 2 rows sharing a key"
    ):
        SequentialRunner().run(create_pipeline(), catalog)

    assert not catalog.exists("acquired_table")
    assert not catalog.exists("acquisition_report")
