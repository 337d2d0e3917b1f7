"""Crowd labels: majority vote, Fleiss' kappa, flagged items, and the simulated demo annotations."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.pipelines.data_acquisition.build_demo_data import (
    main as build_demo_data,
)
from deep_learning_workflow.pipelines.data_acquisition.nodes import (
    aggregate_annotations,
    fleiss_kappa,
)

# Fleiss (1971) as worked through on Wikipedia: 10 items, 14 raters, 5 categories; kappa = 0.210.
FLEISS_EXAMPLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def test_fleiss_kappa_matches_the_published_example():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.2099, abs=1e-4)


def test_fleiss_kappa_edge_cases():
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa(np.array([[3, 0], [4, 0]])))  # one category only: undefined
    assert math.isnan(fleiss_kappa(np.array([[1, 0], [0, 1]])))  # no item with two labels
    # items with a single label do not count towards the observed agreement
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [1, 0]])) == fleiss_kappa(
        np.array([[3, 0], [0, 3]])
    )


def votes(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "annotator_id", "label"])


def crowd_on(settings, **crowd) -> dict:
    return settings(sources={"crowd": {"enabled": True, **crowd}})


def test_majority_vote_ties_and_flags(settings, columns):
    annotations = votes(
        [
            ("C1", "A", "Yes"), ("C1", "B", "Yes"), ("C1", "C", "Yes"),  # unanimous
            ("C2", "A", "No"), ("C2", "B", "No"), ("C2", "C", "No"), ("C2", "D", "Yes"),  # 3 of 4: agreement 0.5
            ("C3", "A", "Yes"), ("C3", "B", "No"), ("C3", "C", "No"),  # 2 of 3: agreement 1/3, flagged
            ("C4", "A", "Yes"),  # a single label, flagged
            ("C5", "A", "Yes"), ("C5", "B", "No"),  # a tie, flagged (agreement 0)
            ("C6", "A", None), ("C6", "B", "No"), ("C6", "C", "No"),  # a missing vote is ignored
        ]
    )  # fmt: skip

    labels, report = aggregate_annotations(annotations, crowd_on(settings), columns)

    assert labels.to_dict("list") == {
        "customer_id": ["C1", "C2", "C6"],
        "churn": ["Yes", "No", "No"],
    }
    assert report["flagged_keys"] == ["C3", "C4", "C5"]
    assert report["items"] == 6 and report["annotations"] == 15 and report["annotators"] == 4
    assert report["labelled_items"] == 3 and report["flagged_items"] == 3
    assert report["label_counts"] == {"No": 8, "Yes": 7}
    assert report["annotators_per_item"] == {"min": 1, "mean": 2.5, "max": 4}
    assert -1 <= report["fleiss_kappa"] <= 1


def test_ties_go_to_the_more_frequent_label_then_alphabetical(settings, columns):
    annotations = votes(
        [
            ("C1", "A", "Yes"),
            ("C1", "B", "No"),
            ("C2", "A", "No"),
            ("C2", "B", "No"),
            ("C3", "A", "b"),
            ("C3", "B", "a"),
        ]
    )
    parameters = crowd_on(settings, min_agreement=0.0)

    labels, _ = aggregate_annotations(annotations, parameters, columns)
    assert dict(zip(labels["customer_id"], labels["churn"], strict=True)) == {
        "C1": "No",
        "C2": "No",
        "C3": "a",
    }

    # the same votes in another order give the same labels
    shuffled, _ = aggregate_annotations(annotations.iloc[::-1], parameters, columns)
    pd.testing.assert_frame_equal(shuffled, labels)


def test_bad_annotations_are_clear_errors(settings, columns):
    twice = votes([("C1", "A", "Yes"), ("C1", "A", "No"), ("C1", "B", "No")])
    with pytest.raises(
        ValueError,
        match=r"raw_annotations.*1 repeated \(item, annotator\) pairs, e.g. \['C1', 'A'\]",
    ):
        aggregate_annotations(twice, crowd_on(settings), columns)

    with pytest.raises(ValueError, match=r"raw_annotations' has no column \['rater'\]"):
        aggregate_annotations(twice, crowd_on(settings, annotator_column="rater"), columns)


def test_disabled_crowd_source_says_so(settings, columns):
    labels, report = aggregate_annotations(votes([("C1", "A", "Yes")]), settings(), columns)
    assert labels.empty and report == {"enabled": False}


def test_demo_annotations_are_simulated_from_the_true_labels(
    project_path, telco, settings, columns
):
    annotations = pd.read_csv(project_path / "data" / "01_raw" / "telco_annotations.csv")

    labels, report = aggregate_annotations(annotations, crowd_on(settings), columns)

    assert report["items"] == 1000
    assert 3 <= report["annotators_per_item"]["min"] and report["annotators_per_item"]["max"] <= 5
    assert 0.2 < report["fleiss_kappa"] < 0.8  # noisy annotators, but far better than chance
    assert report["labelled_items"] + report["flagged_items"] == 1000
    truth = telco.set_index("customer_id")["churn"]
    assert (labels["churn"].to_numpy() == truth[labels["customer_id"]].to_numpy()).mean() > 0.9


def test_documented_command_rebuilds_the_committed_demo_sources(project_path, tmp_path):
    raw = project_path / "data" / "01_raw"
    build_demo_data(["--csv", str(raw / "telco_churn.csv"), "--output-dir", str(tmp_path)])

    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "telco_annotations.csv"), pd.read_csv(raw / "telco_annotations.csv")
    )
    for table in ("billing", "contracts", "payment_methods"):
        query = f"SELECT * FROM {table} ORDER BY 1"  # noqa: S608 (fixed table names)
        with (
            sqlite3.connect(tmp_path / "telco_billing.sqlite") as rebuilt,
            sqlite3.connect(raw / "telco_billing.sqlite") as committed,
        ):
            pd.testing.assert_frame_equal(
                pd.read_sql_query(query, rebuilt), pd.read_sql_query(query, committed)
            )
