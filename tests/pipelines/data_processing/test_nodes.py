"""Node tests of data_processing on tiny frames, including bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import yaml

from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.data_processing.eda import (
    plot_categorical_frequencies,
    plot_class_balance,
    plot_correlations,
    plot_missing_values,
    plot_numeric_distributions,
    summarise_clean_table,
)
from deep_learning_workflow.pipelines.data_processing.nodes import (
    DataProcessingParameters,
    TextCleaning,
    clean_acquired_table,
    normalise_text,
)

COLUMNS = {
    "key": "id",
    "target": "label",
    "positive_class": "Yes",
    "numeric": ["tenure", "charges"],
    "categorical": ["plan", "senior"],
    "text": ["note"],
}
PARAMS = {
    "rules": [
        {"column": "tenure", "ge": 0, "action": "drop_row"},
        {"column": "charges", "gt": 0, "action": "set_missing"},
        {"column": "plan", "allowed": ["basic", "pro"], "action": "set_missing"},
    ]
}


def acquired(**changes) -> pd.DataFrame:
    """Six rows typed the way pandas reads a CSV (text as str, whole numbers as int64)."""
    frame = pd.DataFrame(
        {
            "id": ["a1", "a2", "a3", "a4", "a5", "a6"],
            "label": ["Yes", "No", "No", "Yes", "No", "No"],
            "tenure": [1, 5, 12, 30, 2, 7],
            "charges": ["10.5", "20", " 31.25 ", "", "12", "40"],
            "plan": ["basic", " pro", "pro", "basic", "basic", "pro"],
            "senior": [0, 1, 0, 0, 1, 0],
            "note": [
                "Great<br />product",
                "  too   SLOW ",
                "ok &amp; fine",
                "",
                None,
                "<p>Fine</p>",
            ],
        }
    )
    for column, values in changes.items():
        frame[column] = values
    return frame


def clean(frame: pd.DataFrame, params: dict | None = None, columns: dict | None = None):
    return clean_acquired_table(frame, columns or COLUMNS, PARAMS if params is None else params)


def test_types_follow_the_column_roles():
    table, _ = clean(acquired())
    assert table["tenure"].dtype == "int64"
    assert table["charges"].dtype == "float64"
    assert table["charges"].tolist()[:3] == [10.5, 20.0, 31.25]
    assert np.isnan(table.loc[3, "charges"])  # a blank number is missing, not an error
    assert table["senior"].tolist() == ["0", "1", "0", "0", "1", "0"]
    assert table["plan"].tolist() == ["basic", "pro", "pro", "basic", "basic", "pro"]
    for column in ("id", "label", "plan", "senior", "note"):
        assert pd.api.types.is_string_dtype(table[column]), column


def test_whole_number_categories_and_targets_lose_the_decimal_point():
    frame = acquired(senior=[0.0, 1.0, np.nan, 0.0, 1.0, 0.0], label=[1, 0, 0, 1, 0, 0])
    table, report = clean(frame, columns={**COLUMNS, "positive_class": "1"})
    assert table["label"].tolist() == ["1", "0", "0", "1", "0", "0"]
    assert table["senior"].tolist()[:2] == ["0", "1"]
    assert table["senior"].isna().sum() == 1
    assert report["rows_out"] == 6


def test_text_is_normalised():
    table, _ = clean(acquired())
    assert table["note"].tolist()[:3] == ["great product", "too slow", "ok & fine"]
    assert table["note"].isna().tolist() == [False, False, False, True, True, False]
    assert table.loc[5, "note"] == "fine"


def test_text_options_can_be_switched_off():
    values = pd.Series(["A<br/>B   C"], dtype="str")
    kept = normalise_text(
        values, TextCleaning(lowercase=False, strip_html=False, collapse_whitespace=False)
    )
    assert kept.tolist() == ["A<br/>B   C"]
    assert normalise_text(values, TextCleaning()).tolist() == ["a b c"]


def test_exact_duplicates_are_dropped_and_counted():
    frame = pd.concat([acquired(), acquired().iloc[[1, 1, 4]]], ignore_index=True)
    table, report = clean(frame)
    assert len(table) == 6
    assert table["id"].is_unique
    assert report["rows_dropped"]["exact_duplicate"] == 3


def test_rows_equal_after_cleaning_are_exact_duplicates():
    frame = pd.concat([acquired(), acquired().iloc[[1]].assign(plan="pro  ")], ignore_index=True)
    _, report = clean(frame)
    assert report["rows_dropped"]["exact_duplicate"] == 1


def test_conflicting_duplicate_keys_are_an_error_naming_the_keys():
    frame = pd.concat([acquired(), acquired().iloc[[2, 4]].assign(tenure=99)], ignore_index=True)
    with pytest.raises(ValueError, match=r"2 key\(s\) in column 'id'.*'a3', 'a5'"):
        clean(frame)


def test_rows_without_target_or_key_are_dropped_and_counted():
    frame = acquired(
        label=["Yes", None, "No", " ", "No", "No"], id=["a1", "a2", None, "a4", "a5", "a6"]
    )
    table, report = clean(frame)
    assert table["id"].tolist() == ["a1", "a5", "a6"]
    assert report["rows_dropped"]["missing_target"] == 2
    assert report["rows_dropped"]["missing_key"] == 1


def test_domain_rules_drop_rows_or_set_values_missing():
    frame = acquired(
        tenure=[1, -5, 12, 30, -1, 7],
        charges=["10", "-3", "0", "4", "5", None],
        plan=[
            "basic",
            "gold",
            "pro",
            "basic",
            "basic",
            None,
        ],
    )
    table, report = clean(frame)
    assert table["id"].tolist() == ["a1", "a3", "a4", "a6"]
    assert report["rows_dropped"]["rule: tenure >= 0"] == 2
    assert table["charges"].isna().tolist() == [
        False,
        True,
        False,
        True,
    ]  # 0 broke "> 0"; None stays missing
    assert report["values_set_missing"]["rule: charges > 0"] == {
        "charges": 1
    }  # counted after the drop of a2
    assert report["values_set_missing"]["rule: plan in allowed values"] == {
        "plan": 0
    }  # gold went with a2


def test_no_row_is_dropped_silently():
    frame = pd.concat([acquired(), acquired().iloc[[0]]], ignore_index=True)
    frame.loc[1, "tenure"] = -1
    frame.loc[2, "label"] = None
    table, report = clean(frame)
    assert report["rows_in"] == 7
    assert report["rows_out"] == len(table) == 4
    assert report["rows_dropped_total"] == sum(report["rows_dropped"].values()) == 3
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    ("policy", "rows", "missing"),
    [("set_missing", 6, 1), ("drop_row", 5, 0)],
)
def test_invalid_numbers_follow_the_policy(policy, rows, missing):
    frame = acquired(charges=["10", "n/a", "30", "40", "50", "60"])
    table, report = clean(frame, {**PARAMS, "invalid_numbers": policy})
    assert len(table) == rows
    assert table["charges"].isna().sum() == missing
    if policy == "drop_row":
        assert report["rows_dropped"]["invalid_number"] == 1
    else:
        assert report["values_set_missing"]["invalid_number"] == {"charges": 1}


def test_invalid_numbers_can_stop_the_run_naming_the_column():
    frame = acquired(charges=["10", "n/a", "30", "40", "50", "60"])
    with pytest.raises(ValueError, match=r"\{'charges': 1\}.*'n/a'.*invalid_numbers"):
        clean(frame, {**PARAMS, "invalid_numbers": "error"})


def test_cleaning_is_row_by_row():
    """Cleaning a subset gives the same rows as cleaning everything: nothing is learnt from other rows."""
    frame = acquired(tenure=[1, -5, 12, 30, -1, 7])
    everything, _ = clean(frame)
    part, _ = clean(frame.iloc[[0, 2, 5]])
    expected = everything[everything["id"].isin(["a1", "a3", "a6"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)


def test_the_input_is_not_changed():
    frame = acquired()
    before = frame.copy()
    clean(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_the_telco_csv_cleans_without_loss(project_path):
    frame = pd.read_csv(project_path / "data" / "01_raw" / "telco_churn.csv")
    conf = project_path / "conf" / "base"
    columns = yaml.safe_load((conf / "parameters.yml").read_text())["columns"]
    params = yaml.safe_load((conf / "parameters_data_processing.yml").read_text())[
        "data_processing"
    ]
    table, report = clean_acquired_table(frame, columns, params)
    assert len(table) == 7043 and report["rows_dropped_total"] == 0
    assert table["total_charges"].isna().sum() == 11
    assert sorted(table["churn"].unique()) == ["No", "Yes"]
    assert sorted(table["senior_citizen"].unique()) == ["0", "1"]
    assert table["customer_id"].is_unique


# ---------------------------------------------------------------------------------------------- bad input


def test_an_empty_table_is_an_error():
    with pytest.raises(ValueError, match="'acquired_table' is empty"):
        clean(acquired().iloc[0:0])


def test_a_missing_role_column_is_an_error_naming_it():
    with pytest.raises(ValueError, match="columns.numeric names 'charges'"):
        clean(acquired().drop(columns="charges"))


def test_dropping_every_row_is_an_error():
    with pytest.raises(ValueError, match="dropped every row.*'rule: tenure >= 0': 6"):
        clean(acquired(tenure=[-1] * 6))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"column": "nope", "ge": 0, "action": "drop_row"}, "has no column 'nope'"),
        ({"column": "plan", "ge": 0, "action": "drop_row"}, "bounds need a numeric column"),
        ({"column": "tenure", "allowed": ["1"], "action": "drop_row"}, "'tenure' is numeric"),
    ],
)
def test_rules_that_do_not_fit_the_table_are_errors(rule, message):
    with pytest.raises(ValueError, match=rf"data_processing.rules\[0\].*{message}"):
        clean(acquired(), {"rules": [rule]})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rules": [{"column": "a", "action": "drop_row"}]}, "has no condition"),
        (
            {"rules": [{"column": "a", "ge": 0, "allowed": ["x"], "action": "drop_row"}]},
            "mixes bounds",
        ),
        (
            {"rules": [{"column": "a", "allowed": [True, False], "action": "drop_row"}]},
            "YAML boolean",
        ),
        ({"rules": [{"column": "a", "ge": 0, "action": "delete"}]}, "rules.0.action"),
        ({"invalid_numbers": "ignore"}, "data_processing.invalid_numbers"),
        ({"eda": {"histogram_bins": 1}}, "data_processing.eda.histogram_bins"),
        ({"rules": [{"column": "a", "ge": 0, "action": "drop_row"}] * 2}, "distinct `name`s"),
        ({"unknown": 1}, "data_processing.unknown"),
    ],
)
def test_invalid_parameters_name_the_key(params, message):
    with pytest.raises(ValueError, match=message):
        parse(DataProcessingParameters, params, "data_processing")


def test_allowed_numbers_are_compared_as_text():
    rule = parse(
        DataProcessingParameters,
        {"rules": [{"column": "senior", "allowed": [0, 1.0], "action": "drop_row"}]},
        "data_processing",
    )
    assert rule.rules[0].allowed == ["0", "1"]
    table, _ = clean(acquired(senior=[0, 1, 2, 0, 1, 0]), rule.model_dump())
    assert "2" not in table["senior"].tolist() and len(table) == 5


# ---------------------------------------------------------------------------------------------------- EDA


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 120
    label = np.where(rng.random(rows) < 0.3, "Yes", "No")
    return pd.DataFrame(
        {
            "id": [f"k{i}" for i in range(rows)],
            "label": pd.array(label, dtype="str"),
            "tenure": rng.integers(0, 72, rows),
            "charges": np.where(
                rng.random(rows) < 0.1, np.nan, rng.normal(60, 20, rows) + 15 * (label == "Yes")
            ),
            "plan": pd.array(rng.choice(["basic", "pro", "max"], rows), dtype="str"),
            "senior": pd.array(rng.choice(["0", "1", None], rows), dtype="str"),
            "note": pd.array(["fine"] * rows, dtype="str"),
        }
    )


def test_summary_counts_rows_classes_and_missing_values(table):
    summary = summarise_clean_table(table, COLUMNS)
    json.dumps(summary, allow_nan=False)
    assert summary["rows"] == 120 and summary["columns"] == 7
    assert sum(summary["class_counts"].values()) == 120
    assert summary["class_counts"]["Yes"] == int((table["label"] == "Yes").sum())
    assert summary["missing_values"]["charges"] == int(table["charges"].isna().sum())
    yes = table.loc[table["label"] == "Yes", "charges"]
    assert summary["numeric_by_class"]["Yes"]["charges"]["mean"] == pytest.approx(yes.mean())
    assert summary["numeric_by_class"]["No"]["tenure"]["count"] == int(
        (table["label"] == "No").sum()
    )


def test_class_balance_plot_shows_each_class(table):
    figure = plot_class_balance(table, COLUMNS)
    assert isinstance(figure, go.Figure)
    assert list(figure.data[0].x) == ["No", "Yes"]
    assert sum(figure.data[0].y) == 120


def test_missing_values_plot_has_every_column(table):
    figure = plot_missing_values(table)
    bars = dict(zip(figure.data[0].x, figure.data[0].y, strict=True))
    assert list(bars) == list(table.columns)
    assert bars["charges"] == table["charges"].isna().sum() and bars["id"] == 0


def test_numeric_distributions_are_binned_per_class(table):
    figure = plot_numeric_distributions(table, COLUMNS, {"eda": {"histogram_bins": 10}})
    assert len(figure.data) == 2 * 2  # two numeric columns x two classes
    assert all(len(trace.x) == 10 for trace in figure.data)
    for trace in figure.data:
        share = sum(trace.y)
        if trace.xaxis == "x":  # tenure: no missing value, each class's bins hold all its rows
            assert share == pytest.approx(100, abs=0.01)
        else:  # charges: missing values are in no bin
            assert share < 100
    assert len(figure.to_json()) < 50_000


def test_categorical_plot_shows_the_target_rate_per_level(table):
    figure = plot_categorical_frequencies(table, COLUMNS, {"eda": {"max_categories": 2}})
    plan = [t for t in figure.data if t.xaxis == "x"]
    assert [t.name for t in plan] == ["% Yes"]  # binary: the positive class's share
    assert len(plan[0].x) == 3 and "(other)" in plan[0].x
    senior = [t for t in figure.data if t.xaxis == "x2"]
    assert "(missing)" in senior[0].x
    levels = table["plan"].astype("str")
    for level, rate, rows in zip(plan[0].x, plan[0].y, plan[0].customdata, strict=True):
        if level == "(other)":
            continue
        chosen = table[levels == level]
        assert rows == len(chosen)
        assert rate == pytest.approx(
            100 * (chosen["label"].astype("str") == "Yes").mean(), abs=0.01
        )
    assert sum(plan[0].customdata) == 120


def test_correlations_include_the_positive_class(table):
    figure = plot_correlations(table, COLUMNS)
    heatmap = figure.data[0]
    assert list(heatmap.x) == ["tenure", "charges", "label = Yes"]
    assert heatmap.z[0][0] == 1
    expected = table["charges"].corr((table["label"] == "Yes").astype(float))
    assert heatmap.z[1][2] == pytest.approx(expected, abs=1e-3)


def test_eda_without_numeric_or_categorical_columns_still_draws(table):
    columns = {**COLUMNS, "numeric": [], "categorical": [], "text": ["note", "plan", "senior"]}
    for figure in (
        plot_numeric_distributions(table, columns, {}),
        plot_categorical_frequencies(table, columns, {}),
        plot_correlations(table.drop(columns=["tenure", "charges"]), {**columns}),
    ):
        assert isinstance(figure, go.Figure) and figure.layout.annotations


def test_eda_of_an_empty_table_is_an_error(table):
    with pytest.raises(ValueError, match="'clean_table' is empty"):
        summarise_clean_table(table.iloc[0:0], COLUMNS)
