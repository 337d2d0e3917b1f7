"""``kedro dlw new-table``: from a table file to a runnable environment ``conf/<env>/``."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deep_learning_workflow.parameters import parse

from . import templates
from .checking import short_splits_of
from .inference import TableProfile, infer_profile
from .reading import one_column_hint, read_table
from .writing import (
    check_table_specific_keys_written,
    clearest_rows,
    scenarios_text,
    split_scoring_rows,
    typical_record,
    write_files,
)

ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
RESERVED_ENVS = {"base", "local", "test"}


@dataclass(frozen=True)
class NewEnvironment:
    """What ``new-table`` inferred and wrote."""

    profile: TableProfile
    delimiter: str | None
    rows: int
    paths: templates.Paths
    written: list[Path]
    short_splits: list[str]
    on_small_table: str


def base_parameters(project: Path) -> dict[str, Any]:
    """The parameters of ``conf/base`` alone."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"), base_env="base", default_run_env="base"
    )
    return loader["parameters"]


def _shown(path: Path, project: Path) -> str:
    try:
        return path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return str(path)


def _parquet_bytes(frame: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def check_env_name(env: str, project: Path, force: bool) -> None:
    """Raise ValueError for a name that is not a plain folder name, is reserved, or exists (without force)."""
    if not ENV_NAME.match(env) or env in RESERVED_ENVS:
        raise ValueError(
            f"Environment name '{env}' must start with a letter, hold only letters, digits, _ and -, and not be "
            f"one of {sorted(RESERVED_ENVS)}."
        )
    if (project / "conf" / env).exists() and not force:
        raise ValueError(
            f"conf/{env}/ exists; choose another --env, or --force to rewrite the files new-table writes there."
        )


def create_environment(
    project: Path, table: Path, target: str, env: str, *, force: bool = False
) -> NewEnvironment:
    """Read ``table``, infer its environment and write ``conf/<env>/`` and ``data/01_raw/<env>/``.

    Args:
        project: the project folder.
        table: a CSV or Parquet file.
        target: the column to predict.
        env: the environment's name.
        force: rewrite the files of an existing environment.

    Returns:
        What was inferred and written.

    Raises:
        ValueError: a bad environment name, an unreadable table, no such target, fewer than two classes.
    """
    check_env_name(env, project, force)
    frame, delimiter = read_table(table)
    profile = _profile_of(frame, table, target)
    base = base_parameters(project)
    seed = int(base["seed"])
    training, scoring, held_back = split_scoring_rows(frame, seed)
    from deep_learning_workflow.models.schema import ModellingParams

    modelling = parse(ModellingParams, base["modelling"], "modelling")
    rows = clearest_rows(training, profile, modelling, seed)
    raw = Path("data") / "01_raw" / env
    paths = templates.Paths(
        env=env,
        source=_shown(table, project),
        table=(raw / "table.parquet").as_posix(),
        scoring_batch=(raw / "scoring_batch.parquet").as_posix(),
        scenarios=(raw / "release_scenarios.yml").as_posix(),
        held_back=held_back,
        delimiter=delimiter,
        scoring_rows=len(scoring),
    )
    conf = _conf_files(paths, profile, base)
    files: dict[Path, str | bytes] = {
        project / paths.table: _parquet_bytes(training),
        project / paths.scoring_batch: _parquet_bytes(scoring.drop(columns=target)),
        project / paths.scenarios: scenarios_text(
            paths.source, typical_record(training, profile), rows
        ),
    }
    files |= {project / "conf" / env / name: text for name, text in conf.items()}
    write_files(files)
    splitting = base.get("splitting") or {}
    return NewEnvironment(
        profile,
        delimiter,
        len(frame),
        paths,
        sorted(files),
        short_splits_of(training, target, splitting),
        str(splitting.get("on_small_table", "stop")),
    )


def _profile_of(frame: Any, table: Path, target: str) -> TableProfile:
    """The inferred roles of the table's columns; raises when the target is missing or no feature is left."""
    if target not in frame:
        hint = one_column_hint(frame)
        raise ValueError(
            f"The table {table} has no target column '{target}'"
            + (f": {hint}." if hint else f"; its columns are {list(frame.columns)}.")
        )
    profile = infer_profile(frame, target)
    if not profile.features:
        raise ValueError(f"The table {table} has no feature column besides the key and the target.")
    return profile


def _conf_files(
    paths: templates.Paths, profile: TableProfile, base: dict[str, Any]
) -> dict[str, str]:
    """The environment's configuration files by name (a file with nothing to override is left out)."""
    conf = {
        "globals.yml": templates.globals_text(paths),
        "catalog.yml": templates.catalog_text(paths),
        "parameters.yml": templates.parameters_text(paths, profile),
        "parameters_data_acquisition.yml": templates.acquisition_text(paths),
        "parameters_data_processing.yml": templates.processing_text(paths, profile),
        "parameters_evaluation.yml": templates.evaluation_text(paths, profile, base),
        "parameters_tuning.yml": templates.tuning_text(paths),
        "parameters_modelling.yml": templates.modelling_text(paths, profile),
    }
    conf = {name: text for name, text in conf.items() if text is not None}
    check_table_specific_keys_written(conf)
    return conf


def summary_lines(created: NewEnvironment) -> list[str]:
    """The short table of what was inferred, and the next command."""
    profile, paths = created.profile, created.paths
    delimiter = {None: "Parquet", "\t": "tab", ",": "comma"}.get(
        created.delimiter, repr(created.delimiter)
    )
    counts = ", ".join(f"{label} {count}" for label, count in profile.class_counts.items())
    rows = [
        ("table", f"{paths.source}: {created.rows} rows, {delimiter}"),
        ("key", profile.key if profile.key is not None else "null (no unique column)"),
        ("target", f"{profile.target}: {counts}"),
        ("positive class", profile.positive_class or "null (multi-class: argmax)"),
        ("primary metric", "pr_auc" + ("" if profile.binary else " (macro)")),
        ("numeric", f"{len(profile.numeric)}: {', '.join(map(str, profile.numeric))}"),
        ("categorical", f"{len(profile.categorical)}: {', '.join(map(str, profile.categorical))}"),
        ("text", f"{len(profile.text)}: {', '.join(map(str, profile.text))}"),
        ("no role", ", ".join(f"{c} ({r})" for c, r in profile.ignored.items()) or "-"),
        (
            "scoring batch",
            f"{paths.scoring_batch} ({paths.scoring_rows} rows"
            + (", held back)" if paths.held_back else ", also trained on)"),
        ),
        ("scenarios", f"{paths.scenarios} (a starter: edit it)"),
        ("outputs", f"data/{paths.env}/"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"Wrote conf/{paths.env}/ and data/01_raw/{paths.env}/:"]
    lines += [f"  {name:<{width}}  {value[:150]}" for name, value in rows]
    if created.short_splits:
        consequence = (
            "stops before its first node"
            if created.on_small_table == "stop"
            else "splits it anyway, with a warning"
        )
        lines += [
            f"Warning: the table is too small for the split: `kedro run --env {paths.env}` {consequence} "
            f"(params:splitting.on_small_table: {created.on_small_table}):"
        ]
        lines += [f"  - {line}" for line in created.short_splits]
    lines += [
        "Next:",
        f"  kedro dlw check --env {paths.env}     # seconds: the environment against its table",
        f"  kedro run --env {paths.env}           # acquisition ... release gate",
    ]
    return lines
