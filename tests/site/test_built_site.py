"""The built site holds what the documentation promises: pages, images, downloads, the GIF."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import List

import nbformat
import pytest
from PIL import Image

pytestmark = pytest.mark.site

GALLERY = "auto_examples"
TUTORIAL = f"{GALLERY}/refinement/plot_real_world_refinement.html"
SUCCESS_CRITERIA = 7


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: List[str] = []
        self.links: List[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"])
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])


def parse(page: Path) -> _Links:
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def local(target: str) -> bool:
    return not re.match(r"^(https?:|data:|mailto:|#)", target)


def resolve(page: Path, target: str) -> Path:
    return (page.parent / target.split("#")[0].split("?")[0]).resolve()


def find_page(site_dir: Path, name: str) -> Path:
    """The one built page called ``name`` (e.g. ``plot_tutorial_data.html``), wherever it lies."""
    pages = sorted(site_dir.rglob(name))
    assert len(pages) == 1, f"expected one page {name}, found {[str(p.relative_to(site_dir)) for p in pages]}"
    return pages[0]


def images_on(page: Path) -> List[Path]:
    """The local images a page shows, as files."""
    return [resolve(page, source) for source in parse(page).images if local(source)]


def example_pages(site_dir: Path) -> List[Path]:
    return sorted(p for p in (site_dir / GALLERY).rglob("plot_*.html"))


@pytest.mark.parametrize("page", ["index.html", "api.html", "install.html", "cli.html", "conventions.html",
                                  "differentiable_parameters.html", "performance.html",
                                  f"{GALLERY}/index.html", "sg_execution_times.html", TUTORIAL])
def test_page_exists(site_dir, page):
    assert (site_dir / page).is_file(), f"{page} is missing from the built site"


def test_api_reference_has_a_page_per_class(site_dir):
    for name in ("nanobrag_torch.config.CrystalConfig", "nanobrag_torch.simulator.Simulator",
                 "nanobrag_torch.models.detector.Detector", "nanobrag_torch.io.hkl.read_hkl_file"):
        page = site_dir / "generated" / f"{name}.html"
        assert page.is_file(), f"no API page for {name}"
        assert "Parameters" in page.read_text(encoding="utf-8") or "Returns" in page.read_text(encoding="utf-8")


def test_every_image_resolves(site_dir):
    missing = []
    for page in site_dir.rglob("*.html"):
        for source in parse(page).images:
            if local(source) and not resolve(page, source).is_file():
                missing.append(f"{page.relative_to(site_dir)}: {source}")
    assert not missing, "images referenced but not built:\n" + "\n".join(missing)


def test_gallery_has_examples(site_dir):
    pages = example_pages(site_dir)
    assert len(pages) >= 5, f"only {len(pages)} example pages"
    sections = {p.parent.name for p in pages}
    assert {"getting_started", "detector_geometry", "refinement", "gradients", "extensions"} <= sections


def test_each_example_offers_valid_py_and_ipynb_downloads(site_dir):
    for page in example_pages(site_dir):
        downloads = [resolve(page, href) for href in parse(page).links if href.endswith((".py", ".ipynb"))
                     and local(href)]
        suffixes = {path.suffix for path in downloads}
        assert {".py", ".ipynb"} <= suffixes, f"{page.name} lacks a .py or .ipynb download"
        for path in downloads:
            assert path.is_file(), f"{page.name} links a missing download {path}"
            if path.suffix == ".ipynb":
                notebook = nbformat.read(path, as_version=4)
                nbformat.validate(notebook)
                assert any(cell.cell_type == "code" for cell in notebook.cells)


def test_execution_times_are_reported(site_dir):
    text = (site_dir / "sg_execution_times.html").read_text(encoding="utf-8")
    for page in example_pages(site_dir):
        assert page.stem in text, f"no execution time for {page.stem}"


def test_tutorial_data_example_shows_its_figures_and_the_cell(site_dir):
    page = find_page(site_dir, "plot_tutorial_data.html")
    figures = [path for path in images_on(page) if path.suffix == ".png"]
    assert len(figures) >= 2, f"{page.name} shows {len(figures)} figures"
    assert "a = 26.75 Å, b = 31.31 Å, c = 33.67 Å" in page.read_text(encoding="utf-8")


def test_tutorial_page_shows_figure_gif_and_passing_criteria(site_dir):
    page = site_dir / TUTORIAL
    images = images_on(page)
    assert any(path.suffix == ".png" for path in images), "the tutorial page shows no PNG figure"
    gifs = [path for path in images if path.suffix == ".gif"]
    assert gifs, "the tutorial page does not embed the refinement GIF"
    with Image.open(gifs[0]) as gif:
        assert gif.n_frames > 1, f"{gifs[0].name} has {gif.n_frames} frame"
    text = page.read_text(encoding="utf-8")
    assert text.count("[PASS]") == SUCCESS_CRITERIA, "not all success criteria printed PASS"
    assert "[FAIL]" not in text


def notebook_downloads(site_dir: Path) -> List[Path]:
    return sorted({path.resolve() for path in (site_dir / "_downloads").rglob("plot_*.ipynb")})


def test_downloaded_notebooks_run_top_to_bottom_outside_the_checkout(site_dir, tmp_path):
    """Each notebook's code cells, run in order in a fresh interpreter in an empty folder,
    finish without error: the data come from the installed package, not from a checkout."""
    notebooks = notebook_downloads(site_dir)
    assert len(notebooks) >= 5
    for notebook_path in notebooks:
        notebook = nbformat.read(notebook_path, as_version=4)
        code = "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        folder = tmp_path / notebook_path.stem
        folder.mkdir()
        script = folder / "notebook.py"
        script.write_text(code, encoding="utf-8")
        result = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True,
                                env={**os.environ, "MPLBACKEND": "Agg"}, timeout=900)
        assert result.returncode == 0, f"{notebook_path.name} failed:\n{result.stderr[-2000:]}"
