"""HTML building blocks of the model report: escaping, number formats, tables and the page's style."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from deep_learning_workflow.problem import Costs


def escape_text(value: Any) -> str:
    return html.escape(str(value))


def format_number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape_text(value)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def flatten_items(value: Any, prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and depth > 0:
        items: list[tuple[str, Any]] = []
        for key, inner in value.items():
            items.extend(flatten_items(inner, f"{prefix}.{key}" if prefix else str(key), depth - 1))
        return items
    if isinstance(value, str | int | float | bool) or value is None:
        return [(prefix, value)]
    return []


def format_counts(class_counts: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{escape_text(label)}: {format_number(count)}" for label, count in class_counts.items()
    )


def format_amount(value: float, costs: Costs) -> str:
    return f"{value:,.2f} {escape_text(costs.unit or '')}".strip()


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.verdict { font-size: 1.3em; font-weight: bold; } .release { color: #17692e; } .reject { color: #a11a1a; }
.headline { background: #f6f8fa; border-left: 4px solid #888; padding: 0.6em 1em; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; }
.plot { min-width: 0; }
.muted { color: #666; font-size: 0.9em; }
"""
