"""Readers and writers of nanoBragg's file formats (MOSFLM matrices, HKL text and Fdump
caches, SMV images, PGM previews and source lists) and of the field's: detector images in CBF
and HDF5/NeXus (:func:`~nanobrag_torch.io.images.read_image`) and MTZ reflection files. Every
writer goes through :func:`nanobrag_torch.io.atomic.atomic_write`, so a failed run never leaves
a half-written file."""

from .images import DetectorImage, read_image
from .mtz import read_mtz_amplitudes, write_mtz_amplitudes, write_unmerged_mtz

__all__ = ["DetectorImage", "read_image", "read_mtz_amplitudes", "write_mtz_amplitudes", "write_unmerged_mtz"]
