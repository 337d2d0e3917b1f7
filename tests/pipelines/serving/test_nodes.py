"""Nodes of the serving pipeline on small tables: export, validation, scoring, drift, plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.inference.drift import (
    DriftSettings,
    compute_drift,
    jensen_shannon_distance,
    population_stability_index,
    reference_statistics,
)
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.parameters import validate_parameters
from deep_learning_workflow.pipelines.serving.nodes import (
    export_serving_bundle,
    input_schema,
    plot_drift_distributions,
    plot_drift_scores,
    report_drift,
)
from deep_learning_workflow.pipelines.serving.scoring import (
    score_batch,
    validate_scoring_batch,
)

from .conftest import build_contract_model, release_gate


def make_roles_like_columns(columns: dict) -> ColumnRoles:
    return ColumnRoles(**columns)


def make_roles(numeric=(), categorical=()) -> ColumnRoles:
    return ColumnRoles(target="y", numeric=list(numeric), categorical=list(categorical))


@pytest.fixture
def bundle(keras_model, train, decision_threshold, gate_passed, columns, serving_params):
    return export_serving_bundle(
        keras_model, train, decision_threshold, gate_passed, columns, serving_params
    )


# ------------------------------------------------------------------------------------------------------ export


def test_export_describes_model_schema_reference_and_versions(bundle, train):
    meta = bundle.metadata
    assert meta["classes"] == ["No", "Yes"]
    assert meta["positive_class"] == "Yes"
    assert meta["decision_threshold"] == 0.35
    assert meta["features"] == ["tenure", "monthly_charges", "contract", "paperless_billing"]
    assert len(meta["model_version"]) == 12 and meta["model_sha256"].startswith(
        meta["model_version"]
    )
    assert meta["release_gate"] == {"passed": True, "judged_this_model": True, "forced": False}
    # Stamped by RunRecordHook as the bundle is saved: the node reads neither the clock nor the environment.
    assert "created_at" not in meta and "versions" not in meta
    schema = meta["schema"]
    assert list(schema) == [
        "customer_id",
        "tenure",
        "monthly_charges",
        "contract",
        "paperless_billing",
    ]
    assert schema["customer_id"]["role"] == "key"
    assert schema["tenure"] == {
        "role": "numeric",
        "dtype": "float64",
        "input_dtype": "float32",
        "nullable": False,
        "min": float(train["tenure"].min()),
        "max": float(train["tenure"].max()),
    }
    assert schema["monthly_charges"]["nullable"] is True
    assert schema["contract"]["categories"] == ["Month-to-month", "One year", "Two year"]
    assert schema["contract"]["input_dtype"] == "string"
    reference = meta["reference"]
    assert reference["rows"] == len(train)
    tenure = reference["numeric"]["tenure"]
    assert (
        tenure["bin_edges"][0] == train["tenure"].min()
        and tenure["bin_edges"][-1] == train["tenure"].max()
    )
    assert len(tenure["proportions"]) == len(tenure["bin_edges"]) - 1
    assert math.isclose(sum(tenure["proportions"]) + tenure["missing"], 1.0)
    contract = reference["categorical"]["contract"]
    shares = train["contract"].value_counts(normalize=True)
    assert contract["proportions"] == pytest.approx([shares[c] for c in contract["categories"]])
    json.dumps(meta, allow_nan=False)  # the whole block is valid JSON


def test_export_is_reproducible_for_the_same_model(
    bundle, keras_model, train, decision_threshold, gate_passed, columns, serving_params
):
    again = export_serving_bundle(
        keras_model, train, decision_threshold, gate_passed, columns, serving_params
    )
    assert again.model_version == bundle.model_version


def test_export_refuses_a_model_whose_release_gate_failed(
    keras_model, train, decision_threshold, columns, serving_params
):
    failed = release_gate(keras_model, passed=False)
    with pytest.raises(ValueError, match="release gate failed.*force_export"):
        export_serving_bundle(
            keras_model, train, decision_threshold, failed, columns, serving_params
        )

    forced = export_serving_bundle(
        keras_model,
        train,
        decision_threshold,
        failed,
        columns,
        {**serving_params, "force_export": True},
    )
    assert forced.metadata["release_gate"] == {
        "passed": False,
        "judged_this_model": True,
        "forced": True,
    }


def test_export_refuses_a_model_the_gate_did_not_judge(
    keras_model, train, decision_threshold, columns, serving_params
):
    retrained = build_contract_model(train, make_roles_like_columns(columns), epochs=1, seed=7)
    stale = release_gate(retrained, passed=True)
    with pytest.raises(ValueError, match="judged another model.*force_export"):
        export_serving_bundle(
            keras_model, train, decision_threshold, stale, columns, serving_params
        )
    with pytest.raises(ValueError, match="judged another model"):
        export_serving_bundle(
            keras_model, train, decision_threshold, {"passed": True}, columns, serving_params
        )

    forced = export_serving_bundle(
        keras_model,
        train,
        decision_threshold,
        stale,
        columns,
        {**serving_params, "force_export": True},
    )
    assert forced.metadata["release_gate"] == {
        "passed": True,
        "judged_this_model": False,
        "forced": True,
    }


def test_export_needs_a_gate_verdict_and_a_threshold(
    keras_model, train, decision_threshold, gate_passed, columns, serving_params
):
    with pytest.raises(ValueError, match="release_gate.*boolean 'passed'"):
        export_serving_bundle(
            keras_model, train, decision_threshold, {"verdict": "ok"}, columns, serving_params
        )
    with pytest.raises(ValueError, match="decision_threshold.*between 0 and 1"):
        export_serving_bundle(
            keras_model, train, {"threshold": 1.5}, gate_passed, columns, serving_params
        )
    with pytest.raises(ValueError, match="positive class 'No'"):
        export_serving_bundle(
            keras_model,
            train,
            {"threshold": 0.5, "positive_class": "No"},
            gate_passed,
            columns,
            serving_params,
        )


def test_export_refuses_a_model_that_does_not_match_the_columns(
    keras_model, train, decision_threshold, gate_passed, columns, serving_params
):
    other = {**columns, "numeric": ["tenure"]}
    with pytest.raises(ValueError, match="model takes the inputs .*monthly_charges"):
        export_serving_bundle(
            keras_model, train, decision_threshold, gate_passed, other, serving_params
        )
    three_classes = train.assign(churn=np.resize(["No", "Yes", "Maybe"], len(train)))
    with pytest.raises(ValueError, match="returns 2 probabilities .* 3 classes"):
        export_serving_bundle(
            keras_model, three_classes, decision_threshold, gate_passed, columns, serving_params
        )


def test_serving_parameters_are_validated():
    validate_parameters(
        {"serving": {"force_export": True, "drift": {"numeric_metric": "jensen_shannon"}}}
    )
    with pytest.raises(ValueError, match="serving.drift.numeric_metric"):
        validate_parameters({"serving": {"drift": {"numeric_metric": "kl"}}})
    with pytest.raises(ValueError, match="serving.force_exprot"):
        validate_parameters({"serving": {"force_exprot": True}})


def test_input_schema_counts_blank_categories_as_missing(roles):
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "churn": ["No", "Yes"],
            "tenure": [1.0, 2.0],
            "monthly_charges": [np.nan, np.nan],
            "contract": ["One year", ""],
            "paperless_billing": ["0", "1"],
        }
    )
    schema = input_schema(frame, roles)
    assert (
        schema["contract"]["categories"] == ["One year"] and schema["contract"]["nullable"] is True
    )
    assert (
        schema["monthly_charges"]["min"] is None and schema["monthly_charges"]["nullable"] is True
    )


# -------------------------------------------------------------------------------------------- validate + score


def test_validation_names_the_missing_columns(bundle, new_records):
    with pytest.raises(ValueError, match=r"lacks the columns \['tenure', 'contract'\]"):
        validate_scoring_batch(new_records.drop(columns=["tenure", "contract"]), bundle)
    with pytest.raises(ValueError, match="no records"):
        validate_scoring_batch(new_records.iloc[:0], bundle)


def test_validation_rejects_text_in_a_numeric_column(bundle, new_records):
    broken = new_records.astype({"tenure": "str"})
    broken.loc[3, "tenure"] = "twelve"
    with pytest.raises(ValueError, match="'tenure'.*twelve"):
        validate_scoring_batch(broken, bundle)


def test_validation_keeps_model_columns_and_types_codes_as_text(bundle, new_records):
    raw = new_records.assign(
        paperless_billing=new_records["paperless_billing"].astype(int),
        churn="Yes",
        tenure=new_records["tenure"].astype(int),
    )
    validated = validate_scoring_batch(raw, bundle)
    assert list(validated.columns) == ["customer_id", *bundle.features]
    assert validated["paperless_billing"].tolist() == new_records["paperless_billing"].tolist()
    assert validated["tenure"].dtype == "float64"
    assert "churn" not in validated.columns


def test_batch_scores_equal_the_models_probabilities(
    bundle, new_records, keras_model, roles, serving_params
):
    validated = validate_scoring_batch(new_records, bundle)
    predictions = score_batch(validated, bundle, serving_params)
    expected = predict_probabilities(keras_model, new_records, roles)

    assert list(predictions.columns) == [
        "customer_id",
        "probability_No",
        "probability_Yes",
        "probability",
        "label",
        "model_version",
    ]
    assert predictions["customer_id"].tolist() == new_records["customer_id"].tolist()
    np.testing.assert_allclose(
        predictions[["probability_No", "probability_Yes"]].to_numpy(), expected, rtol=1e-6
    )
    np.testing.assert_allclose(predictions["probability"], expected[:, 1], rtol=1e-6)
    at_threshold = np.where(expected[:, 1] >= 0.35, "Yes", "No")
    assert predictions["label"].tolist() == at_threshold.tolist()
    assert {"Yes", "No"} == set(predictions["label"])  # the threshold actually splits this batch
    assert (predictions["model_version"] == bundle.model_version).all()


def test_unseen_categories_and_missing_values_are_scored(bundle, new_records, serving_params):
    odd = new_records.head(4).copy()
    odd.loc[odd.index[0], "contract"] = "Three year"
    odd.loc[odd.index[1], "monthly_charges"] = np.nan
    odd.loc[odd.index[2], "tenure"] = 1000.0
    predictions = score_batch(validate_scoring_batch(odd, bundle), bundle, serving_params)
    assert np.isfinite(predictions[["probability_No", "probability_Yes"]].to_numpy()).all()
    assert len(predictions) == 4


class _BrokenModel:
    inputs: list = []

    def __call__(self, inputs, training=False):
        rows = len(next(iter(inputs.values())))
        return np.full((rows, 2), np.nan)


def test_non_finite_model_output_is_an_error(bundle, new_records, serving_params):
    from deep_learning_workflow.bundle import ServingBundle

    broken = ServingBundle(bundle.metadata, model=_BrokenModel())
    with pytest.raises(ValueError, match="non-finite probabilities for 5 of 5"):
        score_batch(validate_scoring_batch(new_records.head(5), broken), broken, serving_params)


# ------------------------------------------------------------------------------------------------------- drift


def test_identical_data_shows_no_drift(bundle, train):
    report = compute_drift(train, bundle.reference, DriftSettings(min_rows=50))
    assert report["drifted_features"] == []
    assert report["retraining_due"] is False
    assert all(
        entry["value"] == pytest.approx(0.0, abs=1e-12) for entry in report["features"].values()
    )


def test_same_population_shows_no_drift(bundle, new_records):
    report = compute_drift(new_records, bundle.reference, DriftSettings(min_rows=50))
    assert report["drifted_features"] == [] and report["retraining_due"] is False


def test_shifted_data_drifts_and_makes_retraining_due(bundle, new_records, serving_params):
    shifted = new_records.assign(
        monthly_charges=new_records["monthly_charges"] + 60.0,
        contract=np.where(
            np.arange(len(new_records)) % 10 < 8, "Two year", new_records["contract"]
        ),
    )
    report = report_drift(validate_scoring_batch(shifted, bundle), bundle, serving_params)
    assert report["model_version"] == bundle.model_version
    assert set(report["drifted_features"]) == {"monthly_charges", "contract"}
    assert report["retraining_due"] is True
    charges = report["features"]["monthly_charges"]
    assert (
        charges["metric"] == "psi"
        and charges["value"] > 0.2
        and charges["out_of_range_share"] > 0.3
    )
    json.dumps(report, allow_nan=False)


def test_too_few_rows_never_make_retraining_due(bundle, new_records):
    shifted = new_records.head(20).assign(monthly_charges=500.0)
    report = compute_drift(shifted, bundle.reference, DriftSettings(min_rows=50))
    assert (
        report["drifted_features"][0] == "monthly_charges"
    )  # (20 rows are noisy: others may drift too)
    assert report["enough_rows"] is False and report["retraining_due"] is False


def test_categorical_linf_is_exact_on_a_small_example():
    roles = make_roles(categorical=["colour"])
    train = pd.DataFrame(
        {"colour": ["red", "red", "blue", "blue", "green", None, "red", "blue", "blue", "green"]}
    )
    reference = reference_statistics(train, roles, bins=4)
    assert reference["categorical"]["colour"] == {
        "categories": ["blue", "green", "red"],
        "proportions": [0.4, 0.2, 0.3],
        "missing": 0.1,
    }
    batch = pd.DataFrame({"colour": ["red", "purple", "", "red", "red"]})
    entry = compute_drift(batch, reference, DriftSettings(min_rows=1))["features"]["colour"]
    assert entry["labels"] == ["blue", "green", "red", "missing", "unseen"]
    assert entry["observed"] == pytest.approx([0.0, 0.0, 0.6, 0.2, 0.2])
    assert entry["reference"] == pytest.approx([0.4, 0.2, 0.3, 0.1, 0.0])
    assert entry["value"] == pytest.approx(0.4)  # |0.0 - 0.4| for blue
    assert entry["unseen_categories"] == ["purple"] and entry["unseen_share"] == pytest.approx(0.2)
    assert entry["drifted"] is True


def test_numeric_bins_and_psi_are_exact_on_a_small_example():
    roles = make_roles(numeric=["x"])
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    reference = reference_statistics(train, roles, bins=2)["numeric"]["x"]
    assert reference == {"bin_edges": [1.0, 4.5, 8.0], "proportions": [0.5, 0.5], "missing": 0.0}
    batch = pd.DataFrame(
        {"x": [0.0, 2.0, 4.5, 9.0, np.nan]}
    )  # 4.5 falls in the first (right-closed) bin
    entry = compute_drift(batch, {"numeric": {"x": reference}}, DriftSettings(min_rows=1))[
        "features"
    ]["x"]
    assert entry["labels"] == ["<= 4.5", "> 4.5", "missing"]
    assert entry["observed"] == pytest.approx([0.6, 0.2, 0.2])
    expected_psi = (
        (0.6 - 0.5) * math.log(0.6 / 0.5)
        + (0.2 - 0.5) * math.log(0.2 / 0.5)
        + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    )
    assert entry["value"] == pytest.approx(expected_psi)
    assert entry["out_of_range_share"] == pytest.approx(0.4)


def test_distance_functions():
    assert population_stability_index(np.array([0.5, 0.5]), np.array([0.5, 0.5]), 1e-4) == 0.0
    assert jensen_shannon_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert jensen_shannon_distance(np.array([0.3, 0.7]), np.array([0.3, 0.7])) == pytest.approx(0.0)
    report = compute_drift(
        pd.DataFrame({"x": [10.0] * 10}),
        {
            "numeric": {
                "x": {"bin_edges": [0.0, 1.0, 2.0], "proportions": [0.5, 0.5], "missing": 0.0}
            }
        },
        DriftSettings(numeric_metric="jensen_shannon", numeric_threshold=0.1, min_rows=1),
    )
    assert report["features"]["x"]["metric"] == "jensen_shannon"
    # Shares [0.5, 0.5, 0] (two bins, missing) against [0, 1, 0]; midpoint [0.25, 0.75, 0].
    divergence = (
        0.5 * math.log2(0.5 / 0.25) + 0.5 * math.log2(0.5 / 0.75) + math.log2(1 / 0.75)
    ) / 2
    assert report["features"]["x"]["value"] == pytest.approx(math.sqrt(divergence))
    assert report["retraining_due"] is True


def test_drift_runs_on_logged_request_records(bundle, new_records):
    """The service's request log: records as dictionaries, numbers possibly as text, extra columns."""
    logged = pd.DataFrame(
        [
            {**record, "tenure": str(record["tenure"]), "received_at": "2025-01-01T00:00:00Z"}
            for record in new_records.drop(columns=["customer_id"]).to_dict(orient="records")
        ]
    )
    report = compute_drift(logged, bundle.reference, DriftSettings())
    assert report["rows"] == len(new_records) and report["retraining_due"] is False
    with pytest.raises(ValueError, match=r"lack the feature columns \['tenure'\]"):
        compute_drift(logged.drop(columns=["tenure"]), bundle.reference, DriftSettings())


def test_drift_plots(bundle, new_records, serving_params):
    shifted = new_records.assign(monthly_charges=new_records["monthly_charges"] * 3)
    report = report_drift(validate_scoring_batch(shifted, bundle), bundle, serving_params)
    scores = plot_drift_scores(report)
    assert isinstance(scores, go.Figure)
    bars = scores.data[0]
    assert list(bars.y)[-1] == "monthly_charges" and bars.x[-1] > 1.0
    assert "1 drifted feature(s), retraining due" in scores.layout.title.text
    distributions = plot_drift_distributions(report)
    assert len(distributions.data) == 2 * len(report["features"])
    assert distributions.layout.annotations[0].text == "monthly_charges (drifted)"
