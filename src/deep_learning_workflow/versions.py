"""The package versions a serving bundle records, read in one place by the export node and the run-record hook."""

from __future__ import annotations

import platform
from importlib import metadata


def package_versions() -> dict[str, str | None]:
    """Python's version and those of this package, TensorFlow and Keras (None for one not installed)."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "deep_learning_workflow": version("deep_learning_workflow"),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
    }
