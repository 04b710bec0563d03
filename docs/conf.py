"""Sphinx configuration of the nanobrag-torch documentation."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "sphinxext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import nanobrag_torch  # noqa: E402

project = "nanobrag-torch"
author = "the nanobrag-torch developers"
copyright = "2026, the nanobrag-torch developers"
release = nanobrag_torch.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "sphinxext", "auto_examples/*.ipynb", "auto_examples/**/*.py"]
templates_path = ["_templates"]

autosummary_generate = True
autodoc_typehints = "none"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = "nanobrag-torch"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "subsection_order": [
        "../examples/getting_started",
        "../examples/detector_geometry",
        "../examples/refinement",
        "../examples/gradients",
        "../examples/extensions",
    ],
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib", "gallery_artifacts.scrape_gifs"),
    "reset_modules": ("matplotlib", "gallery_artifacts.remove_artifacts"),
    "reset_modules_order": "both",
    "abort_on_example_error": True,
    "download_all_examples": True,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "matplotlib_animations": False,
    "show_memory": False,
}
