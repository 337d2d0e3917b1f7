"""The inference package stands on its own: it imports neither the pipelines nor the service, and importing it (or
running the fast path's modules) does not import TensorFlow or Keras."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import deep_learning_workflow.inference as inference

PACKAGE = Path(inference.__file__).parent
FORBIDDEN = ("deep_learning_workflow.pipelines", "deep_learning_workflow.service")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_inference_imports_no_pipeline_and_no_service_module():
    offenders = {
        f"{path.name}: {name}"
        for path in PACKAGE.glob("*.py")
        for name in imported_modules(path)
        if name.startswith(FORBIDDEN)
    }
    assert offenders == set()


def test_importing_the_engine_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import deep_learning_workflow.inference\n"
        "from deep_learning_workflow.inference import drift, engine, forward, layers, optimise, translate\n"
        "print(','.join(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""
