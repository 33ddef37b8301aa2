"""Sphinx configuration of the siro-poller documentation: the HTML site and the man page."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from poller import __version__

# The directives that generate the reference pages (docs/_ext/poller_docs.py).
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

# Importing the command line for its reference sets up alembic, which announces its plug-ins.
logging.getLogger("alembic").setLevel(logging.WARNING)

project = "siro-poller"
author = "siro-poller developers"
copyright = "siro-poller developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx_click",
    "poller_docs",
]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["deflist"]
# Headings become link targets (`[text](page.md#heading)`) down to the third level.
myst_heading_anchors = 3
exclude_patterns = ["_build"]

html_theme = "furo"
html_title = f"siro-poller {version}"

# siro-poller(1): the command line reference page, with the commands sphinx-click generates.
man_pages = [
    (
        "reference/cli",
        "siro-poller",
        "poll a phone system's call log and upload every recording to Siro",
        [author],
        1,
    )
]
man_show_urls = False

# Help texts write options as --since; typographic dashes and quotes would change what to type.
smartquotes = False
