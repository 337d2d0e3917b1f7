"""Project commands, found by Kedro in ``<package>.cli``: ``kedro dlw new-table`` and ``kedro dlw check``."""

from __future__ import annotations

from pathlib import Path

import click

# The packaged project (`python -m deep_learning_workflow`, the wheel's script) runs the `run` command of the project's
# cli.py when there is one (kedro.framework.cli.utils.find_run_command): this project keeps Kedro's own.
from kedro.framework.cli.project import run  # noqa: F401


@click.group(name="Deep Learning Workflow")
def cli() -> None:
    """Commands of the Deep Learning Workflow project."""


@cli.group()
def dlw() -> None:
    """Bring your own table: write an environment from it, check an environment against it."""


@dlw.command("new-table")
@click.argument("table", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", required=True, help="The column to predict.")
@click.option("--env", "env", required=True, help="Name of the environment to write (conf/<env>/).")
@click.option("--force", is_flag=True, help="Rewrite the files of an existing environment.")
@click.pass_obj
def new_table(metadata, table: Path, target: str, env: str, force: bool) -> None:
    """Write conf/<env>/ from TABLE (CSV or Parquet): roles, key, classes, metric, every key with its reason."""
    from deep_learning_workflow.new_table.create import create_environment, summary_lines

    try:
        created = create_environment(metadata.project_path, table, target, env, force=force)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo("\n".join(summary_lines(created)))


@dlw.command("check")
@click.option("--env", "env", required=True, help="The environment to check (conf/<env>/).")
@click.pass_obj
def check(metadata, env: str) -> None:
    """Check an environment against its table without running a node; list every problem at once."""
    from deep_learning_workflow.new_table.checking import check_environment

    problems = check_environment(metadata.project_path, env)
    if problems:
        raise click.ClickException(
            f"conf/{env}/ has {len(problems)} problem(s):\n" + "\n".join(f"- {p}" for p in problems)
        )
    click.echo(f"conf/{env}/ is ready: kedro run --env {env}")
