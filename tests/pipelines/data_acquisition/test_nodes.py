"""Join, validation and de-identification nodes on tiny tables, and the parameter schema."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.data_acquisition.nodes import (
    deidentify_table,
    join_sources,
    pseudonymise,
    report_acquisition,
    validate_table,
)
from deep_learning_workflow.pipelines.data_acquisition.schema import AcquisitionParameters

from .conftest import merge

TINY_COLUMNS = {
    "key": "id",
    "target": "y",
    "positive_class": "1",
    "numeric": ["x"],
    "categorical": ["plan"],
}
TINY_DTYPES = {"id": "str", "y": "str", "x": "float64", "plan": "str"}
EMPTY = pd.DataFrame()


@pytest.fixture
def tiny(settings):
    """``params:data_acquisition`` for the tiny tables (only the database source on)."""

    def build(**overrides) -> dict:
        parameters = settings(**overrides)
        parameters["dtypes"] = overrides.get("dtypes", TINY_DTYPES)
        return parameters

    return build


def base() -> pd.DataFrame:
    return pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "y": ["0", "1", "0", "1"], "x": [1.0, 2.0, np.nan, 4.0]}
    )


def billing() -> pd.DataFrame:
    return pd.DataFrame({"id": ["d", "b", "a", "z"], "plan": ["p3", "p2", "p1", "pz"]})


def join(parameters, customers=None, database=None, api=EMPTY, web=EMPTY, crowd=EMPTY):
    customers = base() if customers is None else customers
    database = billing() if database is None else database
    return join_sources(customers, database, api, web, crowd, parameters, TINY_COLUMNS)


def test_join_keeps_every_base_row_in_order_and_counts_matches(tiny):
    api = pd.DataFrame({"id": ["a", "c"], "score": [0.5, 0.7]})
    parameters = tiny()

    table, summary = join(parameters, api=api)

    assert table["id"].tolist() == ["a", "b", "c", "d"]
    assert list(table.columns) == ["id", "y", "x", "plan", "score"]  # dtypes order, then the rest
    assert table["plan"].tolist()[:2] == ["p1", "p2"] and pd.isna(table["plan"].iloc[2])
    database = summary["sources"]["database"]
    assert database["rows"] == 4
    assert database["matched_base_rows"] == 3 and database["unmatched_source_rows"] == 1
    assert summary["sources"]["api"]["matched_base_rows"] == 2
    assert summary["sources"]["web"] == {"dataset": "web_source", "enabled": False}
    assert summary["base"]["rows"] == 4 and len(summary["base"]["content_sha256"]) == 64
    assert summary["joined"] == {"rows": 4, "columns": 5}


def test_disabled_sources_are_not_joined(tiny):
    parameters = tiny(sources={"database": {"enabled": False}})
    table, summary = join(parameters, database=pd.DataFrame({"whatever": [1]}))
    pd.testing.assert_frame_equal(table, base())
    assert summary["sources"]["database"]["enabled"] is False


@pytest.mark.parametrize(
    ("database", "match"),
    [
        (
            pd.DataFrame({"id": ["a", "a", "b"], "plan": ["p", "q", "r"]}),
            r"Source 'database' \(raw_billing\) has 2 rows sharing a key 'id', e.g. \['a'\]",
        ),
        (
            pd.DataFrame({"ident": ["a"], "plan": ["p"]}),
            r"Source 'database' \(raw_billing\) has no key column 'id'",
        ),
        (
            pd.DataFrame({"id": [1, 2], "plan": ["p", "q"]}),
            r"key 'id' has dtype int64 but the base table \(raw_customers\) has str",
        ),
        (
            pd.DataFrame({"id": ["a"], "x": [9.0]}),
            r"brings column\(s\) \['x'\] the table already has",
        ),
    ],
    ids=["duplicate-key", "no-key", "key-dtype", "clash"],
)
def test_join_errors_name_the_source(tiny, database, match):
    with pytest.raises(ValueError, match=match):
        join(tiny(), database=database)


def test_crowd_labels_replace_the_target_of_the_rows_they_cover(tiny):
    parameters = tiny(sources={"crowd": {"enabled": True}})
    # "c" and "d" have no label: flagged or not annotated
    labels = pd.DataFrame({"id": ["a", "b", "q"], "y": ["1", "1", "0"]})

    table, summary = join(parameters, crowd=labels)

    assert table["y"].tolist() == ["1", "1", "0", "1"]
    assert summary["sources"]["crowd"] == {
        "enabled": True,
        "dataset": "raw_annotations",
        "rows": 3,
        "matched_base_rows": 2,
        "changed_targets": 1,
    }
    # a base table without a target gets it from the crowd; rows without a label have none
    table, _ = join(parameters, customers=base().drop(columns="y"), crowd=labels)
    assert table["y"].iloc[:2].tolist() == ["1", "1"] and table["y"].iloc[2:].isna().all()
    assert list(table.columns)[:2] == ["id", "y"]


def valid_table() -> pd.DataFrame:
    table, _ = join_sources(
        base(), billing(), EMPTY, EMPTY, EMPTY, {"dtypes": TINY_DTYPES}, TINY_COLUMNS
    )
    return table.fillna({"plan": "none"})


def test_a_valid_table_passes_unchanged(tiny):
    table = valid_table()
    pd.testing.assert_frame_equal(validate_table(table, tiny(), TINY_COLUMNS), table)


def test_validation_lists_every_violation_in_one_error(tiny):
    table = valid_table().drop(columns="plan")
    table["extra"] = 1
    table["x"] = [1, 2, 3, 4]  # int64, not float64
    table["id"] = ["a", "a", "b", None]
    table["y"] = "0"

    with pytest.raises(ValueError) as error:
        validate_table(table, tiny(), TINY_COLUMNS)

    message = str(error.value)
    assert "fails validation (7 problem(s)); nothing was written" in message
    for expected in [
        "missing column 'plan'",
        "extra column 'extra' (not in data_acquisition.dtypes)",
        "column 'x' has dtype int64, expected float64",
        "duplicate keys in 'id': 1 value(s) on 2 rows, e.g. ['a']",
        "column 'id' (the key, params:columns.key) has 1 missing value(s)",
        "target 'y' has 1 class(es) ['0']; it needs at least two",
        "positive_class '1' does not occur in target 'y', whose classes are ['0']",
    ]:
        assert expected in message


def test_validation_of_an_empty_table_or_one_without_target(tiny):
    with pytest.raises(ValueError, match=r"the table is empty \(0 rows\)") as error:
        validate_table(valid_table().iloc[:0], tiny(), TINY_COLUMNS)
    assert "needs at least two" in str(error.value)

    with pytest.raises(
        ValueError, match=r"missing column 'y' \(the target, params:columns.target\)"
    ):
        validate_table(valid_table().drop(columns="y"), tiny(), TINY_COLUMNS)


def test_validation_rejects_roles_missing_from_the_dtypes(tiny):
    columns = {**TINY_COLUMNS, "numeric": ["x", "age"]}
    with pytest.raises(ValueError, match=r"columns.numeric names 'age'"):
        validate_table(valid_table(), tiny(), columns)


def test_without_dtypes_the_table_passes_as_read_and_only_the_roles_are_checked(tiny):
    table = valid_table().assign(extra=[1, 2, 3, 4], x=[1, 2, 3, 4])  # extra column, int64 numbers
    pd.testing.assert_frame_equal(validate_table(table, tiny(dtypes=None), TINY_COLUMNS), table)
    joined, _ = join(tiny(dtypes=None))
    assert list(joined.columns) == ["id", "y", "x", "plan"]  # the file's order

    broken = table.drop(columns="plan").assign(x=["1", "2", "3", "4"], y="0")
    broken["id"] = ["a", "a", "b", "c"]
    with pytest.raises(ValueError) as error:
        validate_table(broken, tiny(dtypes=None), TINY_COLUMNS)
    message = str(error.value)
    for expected in [
        "missing column 'plan'",
        "column 'x' (params:columns.numeric) has dtype str, expected a number",
        "duplicate keys in 'id'",
        "target 'y' has 1 class(es) ['0']; it needs at least two",
    ]:
        assert expected in message
    assert "extra" not in message


SALT = "a-long-test-salt-0123456789"


def test_deidentification_drops_and_hashes(tiny):
    table = valid_table().assign(email=["a@x", "b@x", None, "a@x"])
    parameters = tiny(
        dtypes={**TINY_DTYPES, "email": "str"},
        sensitive={"drop": ["plan"], "hash": ["id", "email"]},
    )

    result, summary = deidentify_table(table, SALT, parameters, TINY_COLUMNS)

    assert list(result.columns) == ["id", "y", "x", "email"]
    expected = hmac.new(SALT.encode(), b"a", hashlib.sha256).hexdigest()
    assert result["id"].iloc[0] == expected
    assert result["id"].is_unique
    assert result["email"].iloc[0] == result["email"].iloc[3]  # consistent: rows stay linkable
    assert pd.isna(result["email"].iloc[2])
    assert str(result["id"].dtype) == "str"
    pd.testing.assert_series_equal(result["y"], table["y"])
    assert summary["dropped"] == ["plan"] and summary["hashed"] == ["id", "email"]
    assert "pseudonymisation, not anonymisation" in summary["method"]
    assert not table["id"].equals(result["id"])  # the input is not changed
    # another salt, other pseudonyms
    assert pseudonymise(table["id"], SALT + "x").iloc[0] != expected


def test_deidentification_defaults_change_nothing(tiny):
    table = valid_table()
    result, summary = deidentify_table(table, None, tiny(), TINY_COLUMNS)
    pd.testing.assert_frame_equal(result, table)
    assert summary["dropped"] == [] and summary["hashed"] == [] and summary["method"] is None


@pytest.mark.parametrize(
    ("sensitive", "match"),
    [
        (
            {"drop": ["phone"]},
            r"sensitive names \['phone'\], which the acquired table does not have",
        ),
        ({"hash": ["y"]}, r"names the target 'y'"),
        ({"drop": ["id"]}, r"sensitive.drop names the key 'id'"),
    ],
)
def test_deidentification_errors(tiny, sensitive, match):
    with pytest.raises(ValueError, match=match):
        deidentify_table(valid_table(), SALT, tiny(sensitive=sensitive), TINY_COLUMNS)


@pytest.mark.parametrize("salt", [None, "", "short"])
def test_hashing_without_a_salt_in_the_credentials_stops(tiny, salt):
    with pytest.raises(
        ValueError, match=r"salt of at least 16 characters in the credentials"
    ) as error:
        deidentify_table(valid_table(), salt, tiny(sensitive={"hash": ["id"]}), TINY_COLUMNS)
    assert "conf/local/credentials.yml" in str(error.value)


def test_the_base_parameters_are_valid(base_parameters, columns):
    validate_parameters({"data_acquisition": base_parameters, "columns": columns})
    settings = parse(AcquisitionParameters, base_parameters, "data_acquisition")
    assert not settings.sources.crowd.enabled and settings.sources.database.enabled
    assert list(settings.dtypes)[:2] == [columns["key"], columns["target"]]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"sensitive": {"hash": ["customer_id"], "salt": "a-salt-that-is-long-enough"}},
            r"sensitive.salt is a secret and no longer a parameter",
        ),
        (
            {"sources": {"api": {"enabled": True}}},
            r"sources.api is not a parameter: that source is the catalog entry api_source",
        ),
        (
            {"sources": {"web": {"urls": ["http://h/p"]}}},
            r"sources.web is not a parameter: that source is the catalog entry web_source",
        ),
        ({"http": {"timeout_seconds": 0}}, r"http belongs to the catalog entries api_source"),
        ({"dtypes": {"customer_id": "text"}}, r"'text' is not a pandas dtype"),
        ({"sources": {"ftp": {"enabled": True}}}, r"data_acquisition.sources.ftp: Extra inputs"),
    ],
)
def test_bad_parameters_are_rejected_naming_the_key(base_parameters, overrides, match):
    with pytest.raises(ValueError, match=match):
        validate_parameters({"data_acquisition": merge(base_parameters, overrides)})


def test_report_gathers_provenance_matches_and_agreement(tiny):
    _, summary = join(
        tiny(sources={"crowd": {"enabled": True}}), crowd=pd.DataFrame({"id": ["a"], "y": ["1"]})
    )
    api = {"enabled": False, "source": "api_source", "rows": 0}
    web = {"enabled": True, "source": "web_source", "rows": 2, "sha256": "0" * 64}
    agreement = {
        "enabled": True,
        "fleiss_kappa": 0.4,
        "mean_item_agreement": 0.7,
        "items": 3,
        "flagged_items": 1,
    }
    deidentified = {
        "dropped": [],
        "hashed": ["id"],
        "method": "HMAC",
        "rows": 4,
        "columns": ["id", "y"],
    }

    report, annotations = report_acquisition(summary, api, web, agreement, deidentified)

    assert report["sources"]["database"]["matched_base_rows"] == 3
    assert report["sources"]["api"]["provenance"] == api
    assert report["sources"]["web"]["provenance"]["sha256"] == "0" * 64
    assert report["sources"]["crowd"]["agreement"]["fleiss_kappa"] == 0.4
    assert report["acquired_table"] == {"rows": 4, "columns": ["id", "y"]}
    assert report["deidentification"]["hashed"] == ["id"]
    assert annotations == agreement
