"""The order of the examples inside a gallery section: a reading order, then file names.

sphinx-gallery sorts the examples of a section with a key class (named in ``conf.py`` as a
string, ``"gallery_order.ReadingOrder"``). A section's first pages are the ones listed in
:data:`FIRST`, in that order (a tutorial before the pages that build on it); the others
follow by file name.
"""

from __future__ import annotations

from pathlib import Path

FIRST = (
    "plot_real_world_refinement.py",
    "plot_capture_range.py",
    "plot_noise_and_error_bars.py",
    "plot_geometry_refinement.py",
    "plot_modelling_every_pixel.py",
    "plot_cluster.py",
    "plot_working_with_dials.py",
)
"""File names that come first in their section, in this order."""


class ReadingOrder:
    """Sort key of the examples of one section (``src_dir``): :data:`FIRST`, then by file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename) -> tuple:
        name = Path(filename).name
        return (FIRST.index(name), name) if name in FIRST else (len(FIRST), name)

    def __repr__(self) -> str:
        return f"ReadingOrder({FIRST})"
