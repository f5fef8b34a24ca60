"""Sphinx configuration of the course website (built by ``make site``: see website/build.py).

The pages are rendered from the notebooks as stored (never executed here: strict nbval already proves
their outputs), with the panels' stored widget state shown by the Jupyter widgets HTML manager. Every
script, style sheet and font is served from the site itself: the widget manager and MathJax come from
npm packages that ``website/build.py`` fetches, checks and copies into ``_static/vendor``, so a page
makes no request to any other host.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "RNN Loops Lab"
author = "RNN Loops Lab contributors"
copyright = "RNN Loops Lab contributors"

extensions = ["myst_nb", "course_site"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# --- notebooks: stored outputs only -----------------------------------------------------------------
nb_execution_mode = "off"
# The widget manager from our own _static folder (website/vendor.json), not the CDN myst-nb defaults to.
# embed.js renders the standard widget set (all the course's panels use) without RequireJS.
nb_ipywidgets_js = {"vendor/html-manager/embed.js": {}}
myst_enable_extensions = ["dollarmath", "colon_fence", "attrs_inline"]
myst_heading_anchors = 3

# --- math: MathJax 3 from _static, not a CDN --------------------------------------------------------
mathjax_path = "vendor/mathjax/tex-chtml.js"
# The widget manager calls MathJax 2's MathJax.Hub.Queue; this bridges it to MathJax 3 (runs after MathJax).
html_js_files = [("mathjax-hub-bridge.js", {"defer": "defer", "priority": 900})]

# --- HTML -------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "RNN Loops Lab"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = True  # the download button serves the .ipynb from _sources
# Light by default: the stored panels and figures are drawn for a light page (and an empty mode logs a
# console error in pydata-sphinx-theme).
html_context = {"default_mode": "light"}
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,  # the .ipynb, so a reader can take a notebook to JupyterLab
    "use_fullscreen_button": False,  # its script reaches for nothing, but a projector needs no button
    "use_repository_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
# No version switcher, analytics or remote search: every page works from a folder on disk.
html_use_opensearch = ""
