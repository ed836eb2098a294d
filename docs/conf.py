"""Sphinx configuration of the muso_jax documentation site (``make docs``).

Offline by construction: MathJax is served from the site itself (the sphinx-mathjax-offline
package copies it into ``_static/mathjax``), there is no intersphinx, and every lesson is a
MyST notebook executed at every build (``nb_execution_mode = "force"``), so a lesson whose
assertion fails, or any warning, fails ``make docs`` (``sphinx-build -W``).
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

project = "muso_jax"
author = "the muso_jax developers"
copyright = "2026, the muso_jax developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
# myst.header: the Markdown guides start at heading level 1 or 2 alike; ref.python: a type named in
# a docstring (e.g. the W of an (N, H, W, C) shape) may match several attributes of the package.
suppress_warnings = ["myst.header", "ref.python"]

# MyST: $...$ and $$...$$ math, amsmath environments, ::: fences, heading anchors for links.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Lessons run at every build, in a fresh kernel each, and an error in a cell fails the build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 300
nb_merge_streams = True

# API reference from the NumPy-style docstrings.
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "description"
napoleon_google_docstring = True  # a few docstrings still use "Args:"
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "furo"
html_title = "muso_jax"
html_static_path = ["_static"]
html_css_files = ["muso.css"]
