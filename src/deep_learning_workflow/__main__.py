"""Deep Learning Workflow file for ensuring the package is executable
as `deep-learning-workflow` and `python -m deep_learning_workflow`
"""

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project

from deep_learning_workflow.run_checks import MissingRawDataError

# The wheel runs where no `.telemetry` file is (kedro-telemetry reads it from the working folder), so the project's
# opt-out travels with the package: kedro-telemetry also honours this variable. Set it to "" to opt in.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
# A deprecation notice between libraries (omegaconf's API as Kedro and kedro-mlflow call it) that the user of the
# package can do nothing about; it would print three times before the run starts.
warnings.filterwarnings(
    "ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning
)


def main(*args, **kwargs) -> Any:
    package_name = Path(__file__).parent.name
    configure_project(package_name)

    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive

    run = find_run_command(package_name)
    try:
        return run(*args, **kwargs)
    except MissingRawDataError as error:
        if interactive:
            raise
        # The message says all there is to say; a traceback would bury it.
        print(f"Error: {error}", file=sys.stderr)  # noqa: T201
        sys.exit(1)


if __name__ == "__main__":
    main()
