"""nanobrag_torch: a differentiable, pixel-exact PyTorch re-implementation of nanoBragg.

The library simulates still and rotation diffraction images of small crystals on
area detectors, as the nanoBragg C program does, with every continuous parameter
differentiable by autograd. Start from :mod:`nanobrag_torch.config` (the crystal, detector
and beam configurations), build :class:`~nanobrag_torch.models.crystal.Crystal` and
:class:`~nanobrag_torch.models.detector.Detector`, and render with
:class:`~nanobrag_torch.simulator.Simulator`. The ``nanobragg`` command
(:mod:`nanobrag_torch.cli`) is a drop-in for the C program.
"""

__version__ = "0.1.0"
