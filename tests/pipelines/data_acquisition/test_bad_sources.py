"""Bad sources stop the acquisition with one message that says what is wrong, before any file is written.

Each case reads its source through the real catalog dataset (a CSV file, a SQLite database, an HTTP server on
127.0.0.1) and runs the whole pipeline with file datasets for its outputs in a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from deep_learning_workflow.pipelines.data_acquisition import create_pipeline

from .conftest import json_answer

RAW = ("raw_customers", "raw_billing", "raw_annotations", "api_source", "web_source")
WRITTEN = ("acquired_table", "acquisition_report", "annotation_report")


def catalog_for(catalog_config, credentials, tmp_path: Path, **overrides) -> DataCatalog:
    """The pipeline's catalog: the raw entries (with ``overrides``), every output under ``tmp_path/out``."""
    config = {name: dict(catalog_config[name]) for name in (*RAW, *WRITTEN)}
    for name in WRITTEN:
        config[name]["filepath"] = str(tmp_path / "out" / Path(config[name]["filepath"]).name)
    for name, entry in overrides.items():
        config[name] = {**config[name], **entry}
    catalog = DataCatalog.from_config(config, credentials=credentials)
    catalog["deidentification_salt"] = MemoryDataset(None)
    return catalog


def run_to_failure(catalog: DataCatalog, parameters: dict, columns: dict, tmp_path: Path) -> str:
    catalog["params:data_acquisition"] = MemoryDataset(parameters)
    catalog["params:columns"] = MemoryDataset(columns)
    with pytest.raises((ValueError, DatasetError)) as error:
        SequentialRunner().run(create_pipeline(), catalog)
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []  # nothing written, not even a report
    return str(error.value)


def customers_csv(project_path: Path, tmp_path: Path, change) -> str:
    """A copy of the demo file, changed by ``change`` (text -> text)."""
    text = (project_path / "data" / "01_raw" / "telco_churn.csv").read_text()
    path = tmp_path / "customers.csv"
    path.write_text(change(text))
    return str(path)


def set_cell(text: str, row: int, column: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


@pytest.fixture
def billing_copy(project_path, tmp_path) -> tuple[Path, dict]:
    """A copy of the demo database and credentials pointing at it."""
    path = tmp_path / "billing.sqlite"
    shutil.copy(project_path / "data" / "01_raw" / "telco_billing.sqlite", path)
    return path, {"source_database": {"con": f"sqlite:///{path}"}}


def test_infinite_values_in_the_csv_file(
    project_path, catalog_config, billing_copy, tmp_path, settings, columns
):
    def corrupt(text: str) -> str:
        for row in (3, 7):
            text = set_cell(text, row, "tenure", "inf")
        return set_cell(text, 9, "tenure", "")

    path = customers_csv(project_path, tmp_path, corrupt)
    catalog = catalog_for(
        catalog_config, billing_copy[1], tmp_path, raw_customers={"filepath": path}
    )

    message = run_to_failure(catalog, settings(), columns, tmp_path)

    assert "column 'tenure' has dtype float64, expected int64" in message
    assert "1 missing (NaN), 2 infinite (±inf) value(s)" in message


def test_infinite_values_in_the_database(catalog_config, billing_copy, tmp_path, settings, columns):
    path, credentials = billing_copy
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE billing SET total_charges = 9e999 WHERE customer_id IN ('C00001', 'C00002', 'C00003')"
        )
        connection.execute("UPDATE billing SET total_charges = -9e999 WHERE customer_id = 'C00004'")
        connection.execute(
            "UPDATE billing SET monthly_charges = 9e999 WHERE customer_id = 'C00005'"
        )
    catalog = catalog_for(catalog_config, credentials, tmp_path)

    message = run_to_failure(catalog, settings(), columns, tmp_path)

    assert "column 'total_charges' has 4 infinite value(s) (3 +inf, 1 -inf)" in message
    assert "column 'monthly_charges' has 1 infinite value(s) (1 +inf, 0 -inf)" in message


def test_infinite_values_from_the_web_api(
    catalog_config, billing_copy, tmp_path, serve, settings, columns
):
    body = '{"items": [{"customer_id": "C00001", "score": Infinity}, {"customer_id": "C00002", "score": 1.5}]}'
    api = serve(lambda handler: json_answer(body if "page=1&" in handler.path else '{"items": []}'))
    parameters = settings(dtypes={"score": "float64"})
    catalog = catalog_for(
        catalog_config,
        billing_copy[1],
        tmp_path,
        api_source={"url": f"{api.url}/c", "dtypes": {"score": "float64"}},
    )

    message = run_to_failure(catalog, parameters, columns, tmp_path)

    assert "column 'score' has 1 infinite value(s) (1 +inf, 0 -inf)" in message


def test_a_header_only_file(
    project_path, catalog_config, billing_copy, tmp_path, settings, columns
):
    path = customers_csv(project_path, tmp_path, lambda text: text.splitlines()[0] + "\n")
    catalog = catalog_for(
        catalog_config, billing_copy[1], tmp_path, raw_customers={"filepath": path}
    )

    message = run_to_failure(catalog, settings(), columns, tmp_path)

    assert "Dataset 'raw_customers' (the public file) has a header but no rows" in message


def test_an_empty_file(catalog_config, billing_copy, tmp_path, settings, columns):
    path = tmp_path / "customers.csv"
    path.write_text("\n")
    catalog = catalog_for(
        catalog_config, billing_copy[1], tmp_path, raw_customers={"filepath": str(path)}
    )

    message = run_to_failure(catalog, settings(), columns, tmp_path)

    assert f"The file '{path}' is empty: it has no header and no rows" in message


def test_a_semicolon_file_read_with_commas(
    project_path, catalog_config, billing_copy, tmp_path, settings, columns
):
    path = customers_csv(project_path, tmp_path, lambda text: text.replace(",", ";"))
    catalog = catalog_for(
        catalog_config, billing_copy[1], tmp_path, raw_customers={"filepath": path}
    )

    message = run_to_failure(catalog, settings(), columns, tmp_path)

    assert "its header looks ';'-delimited. Set load_args.sep to ';'" in message


def test_a_missing_column_is_listed_with_the_other_problems(
    project_path, catalog_config, billing_copy, tmp_path, settings, columns
):
    frame = pd.read_csv(project_path / "data" / "01_raw" / "telco_churn.csv").drop(
        columns="partner"
    )
    frame.loc[[0, 1], "customer_id"] = "C00001"
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    catalog = catalog_for(
        catalog_config, billing_copy[1], tmp_path, raw_customers={"filepath": str(path)}
    )
    parameters = settings(sources={"database": {"enabled": False}})

    message = run_to_failure(catalog, parameters, columns, tmp_path)

    assert "Usecols" not in message
    assert "missing column 'partner'" in message
    assert "duplicate keys in 'customer_id'" in message


def test_a_query_returning_no_rows(catalog_config, billing_copy, tmp_path, settings, columns):
    path, credentials = billing_copy
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM billing")
    catalog = catalog_for(catalog_config, credentials, tmp_path)

    message = run_to_failure(catalog, settings(), columns, tmp_path)

    assert "The query of dataset 'raw_billing' (the database) returned 0 rows" in message


def test_a_positive_class_the_target_lacks(
    catalog_config, billing_copy, tmp_path, settings, columns
):
    catalog = catalog_for(catalog_config, billing_copy[1], tmp_path)

    message = run_to_failure(catalog, settings(), {**columns, "positive_class": "yes"}, tmp_path)

    assert (
        "positive_class 'yes' does not occur in target 'churn', whose classes are ['No', 'Yes']"
        in message
    )


def test_the_reports_are_written_when_the_run_succeeds(
    catalog_config, billing_copy, tmp_path, settings, columns
):
    catalog = catalog_for(catalog_config, billing_copy[1], tmp_path)
    catalog["params:data_acquisition"] = MemoryDataset(settings())
    catalog["params:columns"] = MemoryDataset(columns)

    SequentialRunner().run(create_pipeline(), catalog)

    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == [
        "acquired_table.parquet",
        "acquisition_report.json",
        "annotation_report.json",
    ]
    assert json.loads((tmp_path / "out" / "annotation_report.json").read_text()) == {
        "enabled": False
    }
