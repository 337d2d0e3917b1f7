"""Node tests of splitting on tiny frames, including bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.splitting.balancing import (
    balance_training_split,
    training_fill_values,
)
from deep_learning_workflow.pipelines.splitting.nodes import (
    SplittingParameters,
    allocate_rows,
    minimum_class_rows,
    report_split,
    split_clean_table,
)

COLUMNS = {
    "key": "id",
    "target": "label",
    "positive_class": "Yes",
    "numeric": ["amount", "months"],
    "categorical": ["plan", "region"],
    "text": [],
}
NUMERIC_ONLY = {**COLUMNS, "categorical": []}
SEED = 7


def table(rows: int = 200, minority: float = 0.25, seed: int = 0) -> pd.DataFrame:
    """A clean table: text key and target, numbers with a few gaps, text categories with a few gaps."""
    rng = np.random.default_rng(seed)
    label = np.where(np.arange(rows) < round(rows * minority), "Yes", "No")
    rng.shuffle(label)
    amount = rng.normal(50, 10, rows) + 20 * (label == "Yes")
    amount[rng.random(rows) < 0.05] = np.nan
    plan = rng.choice(["basic", "pro", "max"], rows).astype(object)
    plan[rng.random(rows) < 0.05] = None
    return pd.DataFrame(
        {
            "id": pd.array([f"c{i:04d}" for i in range(rows)], dtype="str"),
            "label": pd.array(label, dtype="str"),
            "amount": amount,
            "months": rng.integers(0, 72, rows),
            "plan": pd.array(plan, dtype="str"),
            "region": pd.array(rng.choice(["north", "south"], rows), dtype="str"),
            "comment": pd.array(["x"] * rows, dtype="str"),  # a column without a role
        }
    )


def params(method: str = "none", **balancing) -> dict:
    """Splitting parameters; one row per class and split is enough for the tiny tables of these tests."""
    return {"balancing": {"method": method, **balancing}, "min_rows_per_class": 1}


def split(
    frame: pd.DataFrame, settings: dict | None = None, seed: int = SEED, columns: dict | None = None
):
    return split_clean_table(frame, columns or COLUMNS, settings or params(), seed)


# -------------------------------------------------------------------------------------------------- split


def test_each_key_is_in_exactly_one_split():
    frame = table()
    train, val, test, _ = split(frame)
    keys = [set(part["id"]) for part in (train, val, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert keys[0] | keys[1] | keys[2] == set(frame["id"])
    assert len(train) + len(val) + len(test) == len(frame)


def test_splits_keep_rows_and_columns_unchanged():
    frame = table()
    train, val, test, _ = split(frame)
    together = pd.concat([train, val, test]).sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(together, frame.sort_values("id").reset_index(drop=True))


def test_splits_are_stratified_at_the_configured_sizes():
    frame = table(rows=1000, minority=0.2)
    train, val, test, summary = split(frame)
    assert (len(train), len(val), len(test)) == (700, 150, 150)
    for part in (train, val, test):
        assert (part["label"] == "Yes").mean() == pytest.approx(0.2, abs=0.005)
    assert summary["val"]["class_counts"] == {"No": 120, "Yes": 30}
    assert summary["clean_table"]["rows"] == 1000


def test_sizes_come_from_parameters():
    train, val, test, _ = split(
        table(rows=400), {"train_size": 0.5, "val_size": 0.3, "test_size": 0.2}
    )
    assert (len(train), len(val), len(test)) == (200, 120, 80)


def test_same_seed_same_keys_whatever_the_row_order():
    frame = table()
    first = split(frame)
    shuffled = split(frame.sample(frac=1, random_state=3).reset_index(drop=True))
    for a, b in zip(first[:3], shuffled[:3], strict=True):
        assert sorted(a["id"]) == sorted(b["id"])
    again = split(frame)
    for a, b in zip(first[:3], again[:3], strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_another_seed_gives_another_split():
    frame = table()
    assert set(split(frame, seed=1)[2]["id"]) != set(split(frame, seed=2)[2]["id"])


def test_a_table_without_key_splits_too():
    frame = table().drop(columns="id")
    train, val, test, _ = split(frame, columns={**COLUMNS, "key": None})
    assert len(train) + len(val) + len(test) == len(frame)


def test_multiclass_targets_are_stratified():
    frame = table(rows=300)
    frame["label"] = pd.array(np.resize(["a", "b", "c"], 300), dtype="str")
    train, val, test, _ = split(frame, columns={**COLUMNS, "positive_class": None})
    for part in (val, test):
        assert part["label"].value_counts().to_dict() == {"a": 15, "b": 15, "c": 15}


def test_allocation_and_minimum_rows():
    settings = parse(SplittingParameters, {}, "splitting")
    assert allocate_rows(1869, settings) == {"train": 1309, "val": 280, "test": 280}
    assert minimum_class_rows(settings) == 4
    assert min(allocate_rows(4, settings).values()) == 1


def test_the_input_is_not_changed():
    frame = table()
    before = frame.copy()
    split(frame)
    balance_training_split(frame, COLUMNS, params("smote_nc"), SEED)
    pd.testing.assert_frame_equal(frame, before)


# ------------------------------------------------------------------------------------- split: bad input


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train_size": 1.2, "val_size": 0.1, "test_size": 0.1}, "splitting.train_size"),
        ({"train_size": 0.7, "val_size": 0.0, "test_size": 0.3}, "splitting.val_size"),
        ({"train_size": 0.7, "val_size": 0.2, "test_size": 0.2}, "must sum to 1"),
        ({"balancing": {"method": "adasyn"}}, "splitting.balancing.method"),
        ({"balancing": {"sampling_strategy": 1.5}}, "splitting.balancing"),
        ({"balancing": {"k_neighbors": 0}}, "splitting.balancing.k_neighbors"),
        ({"shuffle": True}, "splitting.shuffle"),
    ],
)
def test_invalid_parameters_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        parse(SplittingParameters, settings, "splitting")
    with pytest.raises(ValueError, match=message):
        validate_parameters({"splitting": settings})  # what the hook does before the first node
    with pytest.raises(ValueError, match=message):
        split(table(), settings)


def test_an_empty_table_is_an_error():
    with pytest.raises(ValueError, match="'clean_table' is empty"):
        split(table().iloc[0:0])


def test_a_target_with_one_class_is_an_error():
    with pytest.raises(ValueError, match="'label'.*one class only"):
        split(table().assign(label="No"))


def test_a_class_too_small_to_stratify_is_an_error_naming_it():
    frame = table(rows=100, minority=0.03)
    with pytest.raises(ValueError, match=r"needs at least 4 rows.*\{'Yes': 3\}"):
        split(frame)


def test_missing_targets_and_repeated_keys_are_errors():
    frame = table()
    with pytest.raises(ValueError, match="rows without a target"):
        split(frame.assign(label=frame["label"].where(frame.index != 5)))
    repeated = frame.copy()
    repeated.loc[3, "id"] = repeated.loc[4, "id"]
    with pytest.raises(ValueError, match="Key column 'id'.*repeats"):
        split(repeated)


def test_keys_with_the_synthetic_prefix_are_refused():
    frame = table()
    frame.loc[0, "id"] = "synthetic-000001"
    with pytest.raises(ValueError, match="synthetic_key_prefix"):
        split(frame)


def test_a_missing_column_is_an_error_naming_it():
    with pytest.raises(ValueError, match="columns.target names 'label'"):
        split(table().drop(columns="label"))


@pytest.mark.parametrize(
    ("settings", "columns", "message"),
    [
        (params("smote"), COLUMNS, "smote interpolates numbers only.*Use smote_nc"),
        (params("smote_nc"), NUMERIC_ONLY, "needs categorical columns.*use smote"),
        (params("smote_nc", k_neighbors=60), COLUMNS, "k_neighbors = 60.*class 'Yes' has 34"),
        (
            params("random_oversampling", sampling_strategy=0.1),
            COLUMNS,
            "below the training split's",
        ),
        (
            params("smote_nc"),
            {**COLUMNS, "text": ["comment"]},
            "cannot synthesise the text columns",
        ),
    ],
)
def test_balancing_that_cannot_work_stops_the_split_before_any_row_moves(
    settings, columns, message
):
    with pytest.raises(ValueError, match=message):
        split(table(), settings, columns=columns)
    train = split(table())[0]
    with pytest.raises(ValueError, match=message):
        balance_training_split(train, columns, settings, SEED)


def test_a_ratio_needs_a_binary_target():
    frame = table(rows=300).assign(label=pd.array(np.resize(["a", "b", "c"], 300), dtype="str"))
    with pytest.raises(
        ValueError, match="sampling_strategy = 0.8: a ratio works for binary targets only"
    ):
        split(frame, params("random_undersampling", sampling_strategy=0.8))


# ------------------------------------------------------------------------------------------------ balancing


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return split(table(rows=300, minority=0.2))[0]


def counts(frame: pd.DataFrame) -> dict[str, int]:
    return frame["label"].value_counts().sort_index().to_dict()


def test_no_balancing_returns_the_training_split(train):
    pd.testing.assert_frame_equal(balance_training_split(train, COLUMNS, params(), SEED), train)


def test_random_undersampling_keeps_a_subset_of_real_rows(train):
    balanced = balance_training_split(train, COLUMNS, params("random_undersampling"), SEED)
    assert counts(balanced) == {"No": counts(train)["Yes"], "Yes": counts(train)["Yes"]}
    real = train.set_index("id")
    pd.testing.assert_frame_equal(balanced.set_index("id"), real.loc[balanced["id"]])


def test_random_oversampling_adds_copies_with_new_keys(train):
    balanced = balance_training_split(train, COLUMNS, params("random_oversampling"), SEED)
    assert counts(balanced) == {"No": counts(train)["No"], "Yes": counts(train)["No"]}
    pd.testing.assert_frame_equal(balanced.iloc[: len(train)], train)
    added = balanced.iloc[len(train) :]
    assert added["id"].tolist()[:2] == ["synthetic-000001", "synthetic-000002"]
    assert balanced["id"].is_unique

    def rows(frame: pd.DataFrame) -> pd.Series:
        return (
            frame.drop(columns="id")
            .astype(object)
            .fillna("<missing>")
            .astype(str)
            .agg("|".join, axis=1)
        )

    assert rows(added).isin(set(rows(train))).all()


def test_a_ratio_sets_the_minority_share(train):
    balanced = balance_training_split(
        train, COLUMNS, params("random_oversampling", sampling_strategy=0.5), SEED
    )
    assert counts(balanced)["Yes"] == counts(train)["No"] // 2


def test_smote_synthesises_numeric_rows(train):
    numeric = train.drop(columns=["plan", "region"])
    balanced = balance_training_split(numeric, NUMERIC_ONLY, params("smote", k_neighbors=3), SEED)
    added = balanced.iloc[len(numeric) :]
    assert counts(balanced)["Yes"] == counts(balanced)["No"]
    assert (added["label"] == "Yes").all()
    assert added["months"].dtype == "int64"
    assert added[["amount", "months"]].notna().all().all()
    assert added["comment"].isna().all()  # no role: nothing to synthesise
    pd.testing.assert_frame_equal(balanced.iloc[: len(numeric)], numeric)


def test_smote_nc_works_on_string_categories_with_gaps(train):
    assert train["amount"].isna().any() and train["plan"].isna().any()
    balanced = balance_training_split(train, COLUMNS, params("smote_nc"), SEED)
    real, added = balanced.iloc[: len(train)], balanced.iloc[len(train) :]
    pd.testing.assert_frame_equal(real, train)  # real rows keep their gaps
    assert len(added) == counts(train)["No"] - counts(train)["Yes"]
    assert added[["amount", "months", "plan", "region"]].notna().all().all()
    assert set(added["plan"]) <= {"basic", "pro", "max"}
    assert balanced["id"].is_unique and added["id"].str.startswith("synthetic-").all()
    assert pd.api.types.is_string_dtype(balanced["plan"]) and balanced["months"].dtype == "int64"


def test_smote_nc_fills_gaps_from_the_training_split_only():
    """Minority rows all lack `amount`, so every synthetic minority row carries the fill value exactly."""
    frame = table(rows=400, minority=0.25)
    train, val, test, _ = split(frame)
    train = train.assign(amount=train["amount"].where(train["label"] == "No"))
    balanced = balance_training_split(train, COLUMNS, params("smote_nc"), SEED)
    added = balanced.iloc[len(train) :]

    fill = training_fill_values(train, parse(ColumnRoles, COLUMNS, "columns"))
    assert fill["amount"] == pytest.approx(train["amount"].median())
    np.testing.assert_allclose(added["amount"], train["amount"].median())
    everything = pd.concat([train, val, test])["amount"].median()
    assert everything != pytest.approx(train["amount"].median())


def test_fill_values_are_deterministic_and_need_a_value():
    frame = pd.DataFrame(
        {"amount": [1.0, np.nan, 3.0, 10.0], "plan": pd.array(["b", "a", None, None], dtype="str")}
    )
    roles = ColumnRoles(target="label", numeric=["amount"], categorical=["plan"])
    assert training_fill_values(frame, roles) == {"amount": 3.0, "plan": "a"}
    with pytest.raises(ValueError, match=r"\['plan'\] have no value in the training split"):
        training_fill_values(frame.assign(plan=pd.array([None] * 4, dtype="str")), roles)


@pytest.mark.parametrize("method", ["random_undersampling", "random_oversampling", "smote_nc"])
def test_balancing_is_deterministic(train, method):
    first = balance_training_split(train, COLUMNS, params(method), SEED)
    pd.testing.assert_frame_equal(
        first, balance_training_split(train, COLUMNS, params(method), SEED)
    )


def test_numeric_keys_of_added_rows_are_missing(train):
    numbered = train.assign(id=np.arange(len(train)))
    balanced = balance_training_split(numbered, COLUMNS, params("random_oversampling"), SEED)
    assert balanced["id"].iloc[len(train) :].isna().all()
    assert balanced["id"].iloc[: len(train)].tolist() == list(range(len(train)))


def test_the_report_counts_rows_before_and_after_balancing():
    frame = table(rows=300, minority=0.2)
    settings = params("random_oversampling")
    train, _, _, summary = split(frame, settings)
    balanced = balance_training_split(train, COLUMNS, settings, SEED)
    report = report_split(summary, balanced, COLUMNS, settings)
    assert report["seed"] == SEED
    assert report["splits"]["train"]["rows"] == len(train)
    assert report["splits"]["train_balanced"]["class_ratio"] == {"No": 0.5, "Yes": 0.5}
    assert report["balancing"]["method"] == "random_oversampling"
    assert report["balancing"]["rows_added"] == len(balanced) - len(train)
    assert report["balancing"]["rows_removed"] == 0
    assert report["balancing"]["class_ratio_before"] == report["splits"]["train"]["class_ratio"]
