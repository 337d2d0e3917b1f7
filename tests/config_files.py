"""Read one of conf/base's YAML files with the base environment's globals filled in, as Kedro resolves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_base_yaml(project_path: Path, name: str) -> dict[str, Any]:
    """``conf/base/<name>`` with each ``${globals:<key>}`` replaced by conf/base/globals.yml's value."""
    base = project_path / "conf" / "base"
    text = (base / name).read_text()
    for key, value in yaml.safe_load((base / "globals.yml").read_text()).items():
        text = text.replace(f"${{globals:{key}}}", str(value))
    return yaml.safe_load(text)
