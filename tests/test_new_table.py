"""A new table in one command (docs/own_data.md): inference, the written environment, the check, no silent Telco
values, one data folder per environment, and privacy of data/."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from deep_learning_workflow.environments import TABLE_SPECIFIC_PARAMETERS
from deep_learning_workflow.new_table.checking import check_environment
from deep_learning_workflow.new_table.create import create_environment, summary_lines
from deep_learning_workflow.new_table.inference import infer_profile
from deep_learning_workflow.new_table.reading import read_table
from tests.conftest import data_state, run_kedro
from tests.own_tables import CLASSES, ODD_NAMES, make_tickets

PATTERNS = {
    "catalog": ["catalog*", "catalog*/**", "**/catalog*"],
    "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
}


def test_roles_key_and_positive_class_are_inferred_from_the_table():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=300),
            "row number": np.arange(300),
            "owner": [f"person {i}" for i in range(300)],
            "smoker": rng.integers(0, 2, size=300),
            "region": rng.choice(["north", "south"], size=300),
            "note": [
                f"the customer said {w} about the offer today"
                for w in rng.choice(list("abcdefghij"), 300)
            ]
            + [],
            "constant": 1,
            "Class": rng.choice(["good", "bad"], size=300, p=[0.8, 0.2]),
        }
    )
    frame["note"] = frame["note"] + pd.Series(range(300)).astype(str)
    profile = infer_profile(frame, "Class")
    assert profile.key == "row number"
    assert profile.numeric == ["amount"]
    assert profile.categorical == ["region", "smoker"]  # the 0/1 flag is categorical
    assert profile.text == ["note"]
    assert set(profile.ignored) == {"owner", "constant"}
    assert profile.positive_class == "bad" and profile.binary

    no_key = frame.drop(columns=["row number", "owner"])
    no_key["note"] = "same words for every row here"
    assert infer_profile(no_key, "Class").key is None
    three = infer_profile(frame.assign(Class=rng.choice(CLASSES, size=300)), "Class")
    assert three.positive_class is None and three.classes == CLASSES


def test_a_semicolon_file_is_read_with_its_delimiter(tmp_path):
    path = tmp_path / "t.csv"
    make_tickets(30, seed=1).rename(columns=ODD_NAMES).to_csv(path, sep=";", index=False)
    frame, delimiter = read_table(path)
    assert delimiter == ";"
    assert list(frame.columns) == list(ODD_NAMES.values())
    assert len(frame) == 30


def _new_environment(project, rows=400, force=False, **renames):
    table = make_tickets(rows, seed=3).rename(columns=renames)
    table.to_csv(project / "data" / "01_raw" / "tickets.csv", sep=";", index=False)
    return create_environment(
        project,
        project / "data" / "01_raw" / "tickets.csv",
        renames.get("priority", "priority"),
        "tix",
        force=force,
    )


def test_new_table_writes_every_key_the_run_needs_and_holds_rows_back(project_copy):
    created = _new_environment(project_copy, **ODD_NAMES)
    conf = project_copy / "conf" / "tix"
    parameters = {}
    for path in conf.glob("parameters*.yml"):
        text = path.read_text()
        # Every key line carries its reason.
        assert all(
            "#" in line for line in text.splitlines() if line.strip() and not line.startswith("#")
        )
        parameters |= yaml.safe_load(text)
    for dotted in TABLE_SPECIFIC_PARAMETERS:
        node = parameters
        for part in dotted.split("."):
            assert part in node, dotted
            node = node[part]
    columns = parameters["columns"]
    assert columns["key"] == "Ticket №" and columns["target"] == "Priorité"
    assert columns["positive_class"] is None
    assert columns["text"] == ["Description du problème"]
    assert set(columns["numeric"]) == {"Hours open (Ø)", "Messages"}
    assert parameters["problem"]["primary_metric"] == "pr_auc"
    assert yaml.safe_load((conf / "globals.yml").read_text()) == {"data_root": "data/tix"}

    table = pd.read_parquet(project_copy / created.paths.table)
    batch = pd.read_parquet(project_copy / created.paths.scoring_batch)
    assert len(table) + len(batch) == 400 and len(batch) == 20
    assert not set(table["Ticket №"]) & set(batch["Ticket №"])  # held back from training
    assert "Priorité" not in batch
    scenarios = yaml.safe_load((project_copy / created.paths.scenarios).read_text())
    assert {s["expect_label"] for s in scenarios["scenarios"]} == set(CLASSES)
    assert "STARTER" in (project_copy / created.paths.scenarios).read_text()
    assert check_environment(project_copy, "tix") == []

    with pytest.raises(ValueError, match="exists"):
        _new_environment(project_copy)


def test_check_lists_every_problem_at_once(project_copy):
    _new_environment(project_copy)
    conf = project_copy / "conf" / "tix"
    parameters = yaml.safe_load((conf / "parameters.yml").read_text())
    parameters["columns"] |= {
        "positive_class": "urgent",
        "numeric": ["hours_open", "description"],
        "categorical": ["plan", "no_such_column"],
    }
    (conf / "parameters.yml").write_text(yaml.safe_dump(parameters))
    problems = "\n".join(check_environment(project_copy, "tix"))
    assert "positive_class 'urgent' does not occur" in problems
    assert "columns.numeric names 'description', whose values are text" in problems
    assert "columns.categorical names 'no_such_column'" in problems

    # A semicolon file read with the default delimiter, and a target with one class.
    one_class = make_tickets(50, seed=4).assign(priority="high")
    one_class.to_csv(project_copy / "data" / "01_raw" / "semi.csv", sep=";", index=False)
    catalog = yaml.safe_load((conf / "catalog.yml").read_text())
    catalog["raw_customers"] = {
        "type": "deep_learning_workflow.datasets.atomic.CSVDataset",
        "filepath": "data/01_raw/semi.csv",
    }
    (conf / "catalog.yml").write_text(yaml.safe_dump(catalog))
    problems = "\n".join(check_environment(project_copy, "tix"))
    assert "read as one column" in problems and "sep: ';'" in problems
    one_class.to_csv(project_copy / "data" / "01_raw" / "semi.csv", index=False)
    problems = "\n".join(check_environment(project_copy, "tix"))
    assert "has 1 class(es) ['high']" in problems


def test_an_environment_that_leaves_telco_keys_stops_before_any_node(project_copy):
    _new_environment(project_copy)
    conf = project_copy / "conf" / "tix"
    for name in ("parameters_evaluation.yml", "parameters_tuning.yml"):
        (conf / name).unlink()
    parameters = yaml.safe_load((conf / "parameters.yml").read_text())
    del parameters["problem"]["costs"]
    (conf / "parameters.yml").write_text(yaml.safe_dump(parameters))
    before = data_state(project_copy)

    result = run_kedro(project_copy, "run", "--env", "tix")
    assert result.returncode != 0
    for key in (
        "params:problem.costs (still from base: false_positive, false_negative, unit)",
        "params:evaluation.threshold.rule (base: 'min_expected_cost')",
        "params:evaluation.release_gate.floors (still from base: roc_auc)",
        "params:evaluation.report.title (base: 'Customer churn model report')",
        "params:tuning.study_name",
    ):
        assert key in result.stderr
    assert data_state(project_copy) == before
    checked = run_kedro(project_copy, "dlw", "check", "--env", "tix")
    assert checked.returncode != 0
    assert "params:tuning.study_name" in checked.stderr
    assert "params:evaluation.report.title" in checked.stderr


def test_each_environment_writes_under_its_own_data_root(project_copy):
    from kedro.config import OmegaConfigLoader

    _new_environment(project_copy)
    for env, root in (
        ("base", "data"),
        ("test", "data"),
        ("reviews", "data/reviews"),
        ("tix", "data/tix"),
    ):
        loader = OmegaConfigLoader(str(project_copy / "conf"), base_env="base", default_run_env=env)
        catalog, credentials = loader["catalog"], loader["credentials"]
        assert catalog["train"]["filepath"] == f"{root}/05_model_input/train.parquet"
        assert catalog["model"]["filepath"] == f"{root}/06_models/model.keras"
        assert catalog["previous_release"]["filepath"].startswith(f"{root}/06_models/released/")
        assert catalog["serving_bundle"]["path"] == f"{root}/07_model_output/serving_bundle"
        assert credentials["tuning_storage"]["con"] == f"sqlite:///{root}/06_models/optuna/study.db"
        outputs = [
            entry.get("filepath")
            or entry.get("path")
            or (entry.get("dataset") or {}).get("filepath")
            for name, entry in catalog.items()
            if isinstance(entry, dict)
            and not name.startswith("raw_")
            and name not in ("scoring_batch", "release_scenarios")
        ]
        assert all(path.startswith(f"{root}/0") for path in outputs if path), env


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("data/01_raw/my_private_table.csv", True),
        ("data/01_raw/loans/table.parquet", True),
        ("data/my_table.csv", True),
        ("data/loans/05_model_input/train.parquet", True),
        ("data/01_raw/telco_churn.csv", False),
        ("data/01_raw/hmda.csv", False),
        ("data/01_raw/README.md", False),
    ],
)
def test_only_the_demo_files_under_data_are_not_ignored(project_path, path, ignored):
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", path],
        cwd=project_path,
        check=False,
    )
    if result.returncode not in (0, 1):
        pytest.skip("not a git checkout: cannot ask git what it ignores")
    assert (result.returncode == 0) == ignored


def test_numbers_written_as_text_get_no_role_and_say_why():
    frame = pd.DataFrame(
        {
            "charges": [f"{v % 40}.5" for v in range(99)] + ["?"],
            "target": ["a", "b"] * 50,
        }
    )
    profile = infer_profile(frame, "target")
    assert profile.numeric == [] and "charges" in profile.ignored
    assert "numbers written as text with ['?']" in profile.ignored["charges"]


def test_check_names_the_splits_a_small_table_leaves_short(project_copy):
    _new_environment(project_copy, rows=120)
    problems = [p for p in check_environment(project_copy, "tix") if "min_rows_per_class" in p]
    assert problems and all("is 10, but class '" in p for p in problems)
    assert any(" rows in val (of " in p for p in problems)
    settings = project_copy / "conf" / "tix" / "parameters_splitting.yml"
    settings.write_text(yaml.safe_dump({"splitting": {"on_small_table": "warn"}}))
    assert not [p for p in check_environment(project_copy, "tix") if "min_rows_per_class" in p]


def test_new_table_warns_when_the_table_is_too_small_for_the_split(project_copy):
    created = _new_environment(project_copy, rows=120)
    assert created.short_splits and all("is 10, but class '" in s for s in created.short_splits)
    lines = summary_lines(created)
    warning = [line for line in lines if line.startswith("Warning: the table is too small")]
    assert warning and "stops before its first node" in warning[0]
    assert set(created.short_splits) <= {line.removeprefix("  - ") for line in lines}
    assert not _new_environment(project_copy, rows=400, force=True).short_splits
