"""Sphinx-gallery hooks for files that examples write themselves (the refinement GIF).

sphinx-gallery's matplotlib scraper embeds open figures; an animated GIF that an example
saves with matplotlib's ``PillowWriter`` is a file on disk instead. :func:`scrape_gifs`
copies every new GIF from the example's folder into the gallery's image folder and embeds
it as an image, so it plays in the page. :func:`remove_artifacts` deletes the GIFs and PNGs an
example wrote into its own source folder once it has run, so the source tree stays clean.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

_ARTIFACT_SUFFIXES = (".gif", ".png")


def _example_dir(block_vars) -> Path:
    return Path(block_vars["src_file"]).parent


def scrape_gifs(block, block_vars, gallery_conf):
    """Embed the GIFs that the current code block wrote next to its example."""
    seen = block_vars.setdefault("scraped_gifs", {})
    embedded = []
    for gif in sorted(_example_dir(block_vars).glob("*.gif")):
        stamp = gif.stat().st_mtime_ns
        if seen.get(gif.name) == stamp:
            continue
        seen[gif.name] = stamp
        destination = Path(next(block_vars["image_path_iterator"])).with_suffix(".gif")
        shutil.copyfile(gif, destination)
        embedded.append(str(destination))
    return figure_rst(embedded, gallery_conf["src_dir"]) if embedded else ""


def remove_artifacts(gallery_conf, fname, when):
    """Before and after each example, delete the GIFs and PNGs examples write into the source tree."""
    if fname is None:
        return
    examples_dirs = gallery_conf["examples_dirs"]
    if isinstance(examples_dirs, str):  # a single folder, not a list: do not iterate its characters
        examples_dirs = [examples_dirs]
    for examples_dir in examples_dirs:
        root = Path(gallery_conf["src_dir"], examples_dir).resolve()
        for path in root.rglob("*"):
            if path.suffix in _ARTIFACT_SUFFIXES and path.name.startswith("real_world_refinement_"):
                path.unlink()
