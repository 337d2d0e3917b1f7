"""Sphinx configuration: the Markdown pages in this folder, built with myst-parser.

Build: ``sphinx-build -W docs docs/_build/html`` (warnings are errors, as in the tests).
"""

project = "Deep Learning Workflow"
author = "Deep Learning Workflow contributors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Anchors for every heading down to level 3, so pages can link to sections (page.md#section).
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

html_theme = "alabaster"
html_title = project

# Some code blocks name a language Pygments has no lexer for (cron); they are shown as plain text.
suppress_warnings = ["misc.highlighting_failure"]
