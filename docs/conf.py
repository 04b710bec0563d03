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
    # serves MathJax from the built site (_static/mathjax), so equations render offline
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_design",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
    "gallery_api",
    "gallery_offline",
    "package_refs",
]

# Every cross-reference must resolve (-W turns a missing target into an error). Bare names of
# the package in docstrings are resolved by sphinxext/package_refs.py; the build runs
# offline, without intersphinx, so other projects' names are left unlinked.
nitpicky = True
nitpick_ignore_regex = [
    # NumPy-style type fields are prose ("tensor (slow, fast)", "tuple of 3 floats",
    # "int, optional"), and Sphinx tries to link every word of them: only a capitalised
    # (dotted) name can be a class; lower-case words, numbers, dimension letters and
    # phrases are not
    ("py:class", r"(?![A-Z]\w+(\.\w+)*$).*"),
    # other projects' objects: the build is offline, without intersphinx inventories
    ("py:.*", r"(torch|numpy|matplotlib|pathlib|os|enum)(\..+)?|Path|PathLike"),
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
    "header_links_before_dropdown": 3,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # NANOBRAGG_GALLERY_PATTERN (a regular expression on the example's path) executes only
    # the examples it matches, for a quick build of the pages one is working on, e.g.
    # NANOBRAGG_GALLERY_PATTERN=plot_real_world; the others are shown without output
    "filename_pattern": os.environ.get("NANOBRAGG_GALLERY_PATTERN", r"/plot_"),
    "subsection_order": [
        "../examples/getting_started",
        "../examples/detector_geometry",
        "../examples/refinement",
        "../examples/serial",
        "../examples/field",
        "../examples/gradients",
        "../examples/extensions",
    ],
    "within_subsection_order": "gallery_order.ReadingOrder",
    "image_scrapers": ("matplotlib", "gallery_artifacts.scrape_gifs"),
    "reset_modules": ("matplotlib", "gallery_artifacts.remove_artifacts"),
    "reset_modules_order": "both",
    "abort_on_example_error": True,
    "download_all_examples": True,
    "remove_config_comments": True,
    "min_reported_time": 0,
    # backreferences: every API page lists the examples that use the object (the
    # ``minigallery`` in docs/_templates/autosummary), and every example page lists the API
    # it uses (sphinxext/gallery_api.py); names are kept with their full module path,
    # the path of the API pages, even when the package re-exports them
    "doc_module": ("nanobrag_torch",),
    "backreferences_dir": "generated/backreferences",
    "prefer_full_module": {r"^nanobrag_torch\."},
    # an example's matplotlib animations are embedded as interactive players
    "matplotlib_animations": True,
    "show_memory": False,
}

# the physics page's figures (``.. plot::``) are drawn when the site is built, from scripts in
# docs/figures, with their source code not shown
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_basedir = str(HERE / "figures")
plot_rcparams = {"font.size": 12}
