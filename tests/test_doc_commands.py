"""Every shell command in README.md and docs/*.md runs in a test (often shrunk to ``--env test``) or the docs say
what it needs that a test machine lacks. A new command in the docs fails this test until it is mapped here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import PROJECT_PATH, run_kedro

PROGRAMS = {
    "kedro",
    "python",
    "python3.11",
    "pip",
    "mlflow",
    "jupyter",
    "sphinx-build",
    "docker",
    "curl",
    "optuna-dashboard",
    "pytest",
}
SHELL_BLOCKS = ("bash", "sh", "shell", "console", "cron")

# Command prefix -> the test that runs it (the longest matching prefix wins).
TESTED = {
    "python3.11 -m venv": ".ci/run",
    'pip install -e ".[test]"': ".ci/run",
    'pip install -e ".[notebooks]"': ".ci/run",
    "pytest": ".ci/run",
    "kedro run": "tests/test_notebooks.py::project_after_test_run",
    "kedro run --env test": "tests/test_notebooks.py::project_after_test_run",
    "kedro run --env <env>": "tests/test_own_data.py::test_a_foreign_table_runs_the_whole_workflow_and_is_served",
    "kedro run --env reviews": "tests/test_own_data.py::test_a_foreign_table_runs_the_whole_workflow_and_is_served",
    "kedro run --pipelines data_acquisition": "tests/test_data_workflow.py::test_kedro_run_data_pipelines_writes_splits_and_eda",
    "kedro run --pipelines serving": "tests/pipelines/serving/test_package.py::test_wheel_runs_the_serving_pipeline_and_serves_the_bundle",
    "kedro run --pipelines tuning": "tests/pipelines/tuning/test_workers.py::test_kedro_run_tuning_in_the_test_environment",
    "kedro run --pipelines modelling --params modelling.distribution=multi_worker_mirrored": "tests/pipelines/modelling/test_multi_worker.py::test_two_workers_train_one_model_as_good_as_one_process_and_only_the_chief_saves_it",
    "kedro run --pipelines model_pruning": "tests/pipelines/model_pruning/test_nodes.py::test_tradeoff_table_has_a_row_per_sparsity_with_the_four_figures",
    "kedro run --pipelines evaluation": "tests/test_tracking.py::test_run_logs_curves_and_model_registers_champion_and_bundle_records_it",
    "kedro run --nodes": "tests/test_pipeline_registry.py::test_kedro_run_selects_a_group_and_a_node_by_their_namespaced_names",
    "kedro run --from-nodes": "tests/test_resume_and_determinism.py::_resume_through_faults",
    "kedro run --namespaces": "tests/test_pipeline_registry.py::test_kedro_run_selects_a_group_and_a_node_by_their_namespaced_names",
    "kedro run --runner ParallelRunner": "tests/test_data_workflow.py::test_default_run_under_parallel_runner_logs_into_one_mlflow_run",
    "kedro pipeline create": "tests/test_conventions.py::test_default_run_is_every_pipeline_but_the_opt_in_ones",
    "kedro registry list": "tests/test_doc_commands.py::test_cheap_commands_run",
    "kedro viz": "tests/test_kedro_viz.py::test_kedro_viz_build_works_offline_without_tensorflow",
    "kedro viz build --include-previews": "tests/test_kedro_viz.py::test_kedro_viz_build_works_offline_without_tensorflow",
    "python -m http.server": "tests/test_kedro_viz.py::test_kedro_viz_build_works_offline_without_tensorflow",
    "kedro jupyter lab": "tests/test_notebooks.py::test_kedro_jupyter_lab_starts_and_serves_its_api",
    "jupyter lab notebooks/": "tests/test_notebooks.py::test_kedro_jupyter_lab_starts_and_serves_its_api",
    "mlflow ui": "tests/test_tracking.py::test_mlflow_ui_serves_the_project_store",
    "kedro package": "tests/pipelines/serving/test_package.py::test_wheel_runs_the_serving_pipeline_and_serves_the_bundle",
    "pip install dist/": "tests/pipelines/serving/test_package.py::test_wheel_runs_the_serving_pipeline_and_serves_the_bundle",
    "python -m deep_learning_workflow": "tests/test_conventions.py::test_packaged_run_without_raw_data_stops_at_once_naming_the_files",
    "python -m deep_learning_workflow --conf-source": "tests/pipelines/serving/test_package.py::test_wheel_runs_the_serving_pipeline_and_serves_the_bundle",
    "python -m deep_learning_workflow.service --bundle": "tests/service/test_process.py::test_process_readiness_and_graceful_sigterm",
    "python -m deep_learning_workflow.service --workers": "tests/service/test_workers.py::test_two_workers_share_the_port_sum_their_metrics_and_stop_without_losing_a_row",
    "python -m deep_learning_workflow.service.report": "tests/service/test_canary_shadow.py::test_shadow_scores_everything_without_changing_answers",
    "curl -s localhost:8000/predict": "tests/service/test_process.py::test_process_readiness_and_graceful_sigterm",
    "python -c": "tests/pipelines/serving/test_nodes.py::test_shifted_data_drifts_and_makes_retraining_due",
    "sphinx-build -W docs docs/_build": "tests/test_docs.py::test_docs_build_without_warnings",
    "kedro dlw new-table": "tests/test_new_table_end_to_end.py::test_a_table_goes_from_file_to_service_in_two_commands",
    "kedro dlw check": "tests/test_new_table.py::test_an_environment_that_leaves_telco_keys_stops_before_any_node",
}
# Command prefix -> what it needs that the test machine lacks; the page that shows it must say so.
NEEDS = {
    "docker": "Needs a Docker engine",
    "curl -s localhost:8000/readyz": "Needs a Docker engine",
    "pip install kedro-airflow": "kedro-airflow",
    "kedro airflow": "kedro-airflow",
    "pip install optuna-dashboard": "optuna-dashboard",
    "pip install pip-audit": "reachable",
    "optuna-dashboard": "optuna-dashboard",
    # Benchmarks print figures on demand and are never run by tests (figures do not belong in tests).
    "python benchmarks/": "benchmarks/",
}


def _join_continued(lines: list[str]) -> list[str]:
    commands, current = [], ""
    for line in lines:
        current = f"{current} {line.strip()}".strip()
        if current.endswith("\\"):
            current = current[:-1]
            continue
        if current.count("'") % 2 or current.count('"') % 2:
            continue  # a quoted argument spans lines
        commands.append(current)
        current = ""
    return commands + ([current] if current else [])


def _split(command: str) -> list[str]:
    """The programs a line runs: cron times, ``cd ... &&``, ``.venv/bin/`` and ``VAR=value`` removed."""
    command = re.sub(r"^([\d*/,-]+\s+){5}", "", command)
    parts = []
    for part in re.split(r"\s*&&\s*", command):
        part = re.sub(r"\.venv/bin/", "", part.split("  #")[0]).strip()
        while re.match(r"^[A-Z_]+=\S*\s", part):
            part = part.split(None, 1)[1]
        if part.split(" ", 1)[0] in PROGRAMS:
            parts.append(part)
    return parts


def documented_commands(text: str) -> list[str]:
    """Commands in the page's shell blocks and in its inline code spans that start with a program."""
    found = []
    for language, body in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.DOTALL):
        if language in SHELL_BLOCKS:
            lines = [
                line for line in body.splitlines() if line.strip() and not line.startswith("#")
            ]
            for command in _join_continued(lines):
                found += _split(command)
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    for span in re.findall(r"`([^`\n]+)`", prose):
        found += _split(span)
    return found


def _pages() -> list[Path]:
    return [PROJECT_PATH / "README.md", *sorted((PROJECT_PATH / "docs").glob("*.md"))]


def _match(command: str, table: dict[str, str]) -> str | None:
    prefixes = sorted((p for p in table if command.startswith(p)), key=len, reverse=True)
    return prefixes[0] if prefixes else None


def test_extraction_finds_block_span_cron_and_continued_commands():
    page = (
        "Run `kedro run --env test` or `pipelines`.\n\n```bash\nMLFLOW_X=1 mlflow ui --port 5\n"
        "python tool.py --a \\\n  --b\n# a comment\n```\n\n```cron\n0 2 * * *  cd /srv && .venv/bin/kedro run\n```\n"
    )
    assert documented_commands(page) == [
        "mlflow ui --port 5",
        "python tool.py --a  --b",
        "kedro run",
        "kedro run --env test",
    ]


def test_every_documented_command_is_tested_or_says_what_it_needs():
    unmapped, unsaid = [], []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for command in documented_commands(text):
            need, tested = _match(command, NEEDS), _match(command, TESTED)
            if need is not None and len(need) > len(tested or ""):
                if NEEDS[need].lower() not in text.lower():
                    unsaid.append(f"{page.name}: {command!r} must say it needs {NEEDS[need]!r}")
            elif tested is None:
                unmapped.append(f"{page.name}: {command}")
    assert not unmapped, "commands no test runs (map them in TESTED):\n" + "\n".join(unmapped)
    assert not unsaid, "\n".join(unsaid)


@pytest.mark.parametrize("target", sorted(set(TESTED.values())))
def test_every_mapped_test_exists(target):
    path, _, name = target.partition("::")
    text = (PROJECT_PATH / path).read_text(encoding="utf-8")
    if name:
        assert re.search(rf"^(async )?def {re.escape(name)}\(", text, flags=re.MULTILINE), target
    else:
        assert "pytest" in text and "pip install" in text, path


def test_ci_installs_the_extras_the_docs_install():
    ci = (PROJECT_PATH / ".ci" / "run").read_text(encoding="utf-8")
    assert '".[test,notebooks]"' in ci


def test_cheap_commands_run(project_copy):
    result = run_kedro(project_copy, "registry", "list")
    assert result.returncode == 0, result.stderr[-2000:]
    listed = set(re.findall(r"^- (\S+)$", result.stdout, flags=re.MULTILINE))
    assert {"__default__", "data_acquisition", "serving", "tuning"} <= listed, result.stdout


def test_split_reads_commands_like_a_shell():
    assert _split(
        "0 3 * * 0  cd /srv && .venv/bin/kedro run && .venv/bin/kedro run --pipelines serving"
    ) == [
        "kedro run",
        "kedro run --pipelines serving",
    ]
    assert shlex.split(_split('KEDRO_ENV=test kedro run --params "a=1,b=2"')[0])[-1] == "a=1,b=2"
