"""A table too small for the split: every split must hold min_rows_per_class rows of every class."""

from __future__ import annotations

from functools import partial

import pandas as pd
import pytest
import yaml

from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.splitting.class_sizes import (
    check_split_sizes,
    label_counts,
    rows_needed,
    short_splits,
)
from deep_learning_workflow.pipelines.splitting.nodes import (
    SplittingParameters,
    allocate_rows,
    split_clean_table,
)
from tests.conftest import data_state, run_kedro
from tests.own_tables import CLASSES, make_tickets
from tests.pipelines.splitting.test_nodes import COLUMNS, SEED, table
from tests.test_own_data import ENV, write_environment

DEFAULT_SIZES = partial(allocate_rows, params=SplittingParameters())


def test_short_splits_name_each_class_and_split_below_the_minimum():
    counts = {"No": 150, "Yes": 50}
    # 50 rows of Yes: 34 train, 8 val, 8 test at 70/15/15.
    assert short_splits(counts, DEFAULT_SIZES, 10) == [("Yes", "val", 8), ("Yes", "test", 8)]
    assert short_splits(counts, DEFAULT_SIZES, 8) == []
    assert rows_needed(DEFAULT_SIZES, 10) == 64
    assert min(DEFAULT_SIZES(64).values()) == 10 > min(DEFAULT_SIZES(63).values())


def test_a_short_class_stops_the_split_naming_class_split_counts_and_what_to_do():
    frame = table(rows=200, minority=0.25)
    with pytest.raises(ValueError) as raised:
        split_clean_table(frame, COLUMNS, {"min_rows_per_class": 10}, SEED)
    message = str(raised.value)
    assert (
        "class 'Yes' would have 8 rows in val (of 50 rows of that class in 'clean_table')"
        in message
    )
    assert "class 'Yes' would have 8 rows in test" in message
    assert "'No'" not in message
    assert "each class needs at least 64 rows" in message
    assert "params:splitting.on_small_table: warn" in message


def test_warn_splits_anyway_and_returns_the_problems(caplog):
    frame = table(rows=200, minority=0.25)
    train, val, test, _ = split_clean_table(
        frame, COLUMNS, {"min_rows_per_class": 10, "on_small_table": "warn"}, SEED
    )
    assert [(part["label"] == "Yes").sum() for part in (train, val, test)] == [34, 8, 8]
    params = SplittingParameters(min_rows_per_class=10, on_small_table="warn")
    problems = check_split_sizes({"Yes": 50}, params, "clean_table", "label")
    assert len(problems) == 2


def test_the_minimum_and_the_choice_are_validated():
    with pytest.raises(ValueError, match="splitting.on_small_table"):
        parse(SplittingParameters, {"on_small_table": "ignore"}, "splitting")
    with pytest.raises(ValueError, match="splitting.min_rows_per_class"):
        parse(SplittingParameters, {"min_rows_per_class": 0}, "splitting")


def test_raw_labels_are_counted_as_cleaning_makes_them():
    raw = pd.Series([" a", "a ", "b", None, "", 1.0, 1, 2.5][:5])
    assert label_counts(raw) == {"a": 2, "b": 1}
    assert label_counts(pd.Series([1.0, 0.0, None, 1.0])) == {"1": 2, "0": 1}


def _tiny_environment(project, on_small_table: str) -> None:
    """conf/tickets with a data root of its own and a 60-row table of three classes."""
    make_tickets(60, seed=3).to_parquet(project / "data/01_raw/tickets.parquet", index=False)
    write_environment(project)
    environment = project / "conf" / ENV
    (environment / "globals.yml").write_text(yaml.safe_dump({"data_root": f"data/{ENV}"}))
    (environment / "parameters_splitting.yml").write_text(
        yaml.safe_dump({"splitting": {"min_rows_per_class": 20, "on_small_table": on_small_table}})
    )


def test_a_table_too_small_stops_the_run_before_anything_is_written(project_copy):
    _tiny_environment(project_copy, "stop")
    before = data_state(project_copy)
    counts = make_tickets(60, seed=3)["priority"].value_counts()

    result = run_kedro(project_copy, "run", "--env", ENV)

    assert result.returncode != 0
    assert "The table is too small to split" in result.stderr
    for label in CLASSES:
        val = allocate_rows(int(counts[label]), SplittingParameters())["val"]
        assert f"class '{label}' would have {val} rows in val" in result.stderr
    assert "in 'raw_customers'" in result.stderr
    assert not (project_copy / "data" / ENV).exists()
    assert data_state(project_copy) == before


def _check_before_the_run(on_small_table: str) -> None:
    """The hook, before a splitting run on a 60-row clean table that min_rows_per_class 20 finds too small."""
    from kedro.io import DataCatalog, MemoryDataset

    from deep_learning_workflow.pipelines.splitting.hooks import CheckSplitSizesHook
    from deep_learning_workflow.pipelines.splitting.pipeline import create_pipeline

    settings = {"min_rows_per_class": 20, "on_small_table": on_small_table}
    catalog = DataCatalog(
        {
            "clean_table": MemoryDataset(table(rows=60, minority=0.25)),
            "params:splitting": MemoryDataset(settings),
            "params:columns": MemoryDataset(COLUMNS),
        }
    )
    CheckSplitSizesHook().before_pipeline_run({}, create_pipeline(), catalog)


def test_the_hook_stops_a_run_on_a_small_table_with_stop():
    with pytest.raises(ValueError, match="The table is too small to split") as stopped:
        _check_before_the_run("stop")
    assert "in 'clean_table'" in str(stopped.value)


def test_the_hook_lets_a_run_on_a_small_table_through_with_warn():
    _check_before_the_run("warn")  # split_clean_table then warns on the clean table itself


# End to end: the three data pipelines run (the in-process test above checks the hook lets warn through).
@pytest.mark.slow
def test_warn_runs_the_split_of_a_table_too_small(project_copy):
    _tiny_environment(project_copy, "warn")
    result = run_kedro(
        project_copy,
        "run",
        "--env",
        ENV,
        "--pipelines",
        "data_acquisition,data_processing,splitting",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The table is too small to split" in result.stdout + result.stderr
    folder = project_copy / "data" / ENV / "05_model_input"
    splits = [pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "val", "test")]
    assert sum(len(part) for part in splits) == 60
    assert all(set(part["priority"]) == set(CLASSES) for part in splits)
    assert max(len(part) for part in splits[1:]) < 20
