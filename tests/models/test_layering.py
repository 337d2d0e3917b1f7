"""The model package is shared by the pipelines: it imports no pipeline and no part of the service."""

from __future__ import annotations

import ast
from pathlib import Path

import deep_learning_workflow.models as models


def test_the_models_package_imports_no_pipeline_and_no_service():
    root = Path(models.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for statement in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(statement, ast.ImportFrom) and statement.module:
                names = [statement.module]
            elif isinstance(statement, ast.Import):
                names = [alias.name for alias in statement.names]
            else:
                continue
            offenders += [
                f"{path.relative_to(root)}: {name}"
                for name in names
                if name.startswith(
                    ("deep_learning_workflow.pipelines", "deep_learning_workflow.service")
                )
            ]
    assert len(list(root.rglob("*.py"))) >= 10
    assert offenders == []


def test_the_datasets_package_takes_its_layers_from_the_models_package():
    text = (
        Path(models.__file__).parents[1].joinpath("datasets", "keras_model_dataset.py").read_text()
    )
    assert "deep_learning_workflow.models.layers" in text
    assert "deep_learning_workflow.pipelines" not in text
