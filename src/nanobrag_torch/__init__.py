"""nanobrag_torch: a differentiable, pixel-exact PyTorch re-implementation of nanoBragg.

The library simulates still and rotation diffraction images of small crystals on area
detectors, as the nanoBragg C program does, with every continuous parameter differentiable
by autograd::

    from nanobrag_torch import BeamConfig, Crystal, CrystalConfig, Detector, DetectorConfig, Simulator

    crystal = Crystal(CrystalConfig(cell_a=70, cell_b=80, cell_c=90, N_cells=(5, 5, 5), default_F=100))
    detector = Detector(DetectorConfig(distance_mm=100, fpixels=128, spixels=128))
    image = Simulator(crystal, detector, BeamConfig(wavelength_A=1.0)).run()

Where things live: ``config`` (the configurations), ``models`` (crystal, detector, beam),
``conventions`` (detector conventions and beam-centre rules), ``physics`` (lattice factors,
polarization), ``structure_factors``, ``rng`` (the mosaic sampling, bit-compatible with C),
``simulator``, ``io`` (file formats) and ``cli`` (the ``nanobragg`` command, a drop-in for
the C program).
"""

from .config import (BeamConfig, ConfigError, CrystalConfig, CrystalShape, DetectorConfig, DetectorConvention,
                     DetectorPivot, MultiPanelDetectorConfig, NoiseConfig)
from .conventions import beam_center_for_pixel, default_beam_center_mm
from .datasets import tutorial_data_paths
from .io.hkl import read_fdump, read_hkl_file
from .io.mosflm import read_mosflm_matrix, reciprocal_to_real_cell
from .models.beam import Beam
from .models.crystal import Crystal
from .models.detector import Detector, detector_region
from .prepared import PreparedRun
from .simulator import Simulator
from .structure_factors import StructureFactors

__version__ = "0.1.0"

__all__ = [
    "Simulator", "PreparedRun", "Crystal", "Detector", "detector_region", "Beam",
    "CrystalConfig", "DetectorConfig", "MultiPanelDetectorConfig", "BeamConfig", "NoiseConfig", "ConfigError",
    "DetectorConvention", "DetectorPivot", "CrystalShape",
    "StructureFactors", "read_hkl_file", "read_fdump", "read_mosflm_matrix", "reciprocal_to_real_cell",
    "tutorial_data_paths", "beam_center_for_pixel", "default_beam_center_mm",
]
