"""The simulator as a function of the refined parameters.

:class:`ExperimentModel` renders the expected photon counts of chosen pixels for a vector of
parameter values, and their exact Jacobian by forward-mode automatic differentiation: one
forward pass per parameter, each holding only the rendered pixels.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence, Tuple

import torch
import torch.autograd.forward_ad as forward_ad

from ..geometry import unit
from ..models.crystal import Crystal
from ..models.detector import Detector
from ..simulator import Simulator
from ..structure_factors import StructureFactors
from .parameters import SCALE, Parameter, configs_with


class ExperimentModel:
    """Expected counts ``scale · image + background`` as a function of the refined parameters.

    Parameters
    ----------
    configs : mapping
        ``{"crystal": CrystalConfig, "detector": DetectorConfig, "beam": BeamConfig}``.
    structure_factors : StructureFactors or tuple (grid, metadata) or None
        As :class:`~nanobrag_torch.models.crystal.Crystal` takes them; converted once to the
        simulation's dtype (and to float64 for the spot geometry) and shared by every evaluation.
    parameters : sequence of Parameter
        The refined parameters, in the order of the value vectors.
    background : tensor (spixels · fpixels,)
        Expected background photons per pixel (flat, float64).
    dtype, device
        Of the simulation.
    on_evaluation : callable, optional
        Called after every simulator run (for a progress bar).

    Attributes
    ----------
    evaluations : int
        Simulator runs so far (a forward-mode pass for one Jacobian column counts as one).
    """

    def __init__(self, configs: Mapping[str, object], structure_factors, parameters: Sequence[Parameter],
                 background: torch.Tensor, dtype: torch.dtype, device: torch.device,
                 on_evaluation: Optional[Callable[[], None]] = None):
        self.configs = dict(configs)
        self._tables = {dt: _table(structure_factors, configs["crystal"].default_F, dt, device)
                        for dt in {dtype, torch.float64}}
        self.parameters = list(parameters)
        self.background = background
        self.dtype = dtype
        self.device = device
        self.evaluations = 0
        self._on_evaluation = on_evaluation
        self._scale_index = next((p for p, parameter in enumerate(self.parameters) if parameter.config == SCALE), None)

    def simulator(self, values: Sequence[torch.Tensor], dtype: Optional[torch.dtype] = None) -> Simulator:
        """The simulator with the refined fields set to ``values`` (tensors)."""
        dtype = dtype or self.dtype
        crystal_config, detector_config, beam_config = configs_with(self.configs, self.parameters, values)
        crystal = Crystal(crystal_config, self._tables[dtype], device=self.device, dtype=dtype)
        return Simulator(crystal, Detector(detector_config, device=self.device, dtype=dtype), beam_config)

    def _values(self, x: torch.Tensor) -> list:
        return list(x.to(device=self.device, dtype=self.dtype).unbind())

    def _scale(self, x: torch.Tensor) -> float:
        return 1.0 if self._scale_index is None else float(x[self._scale_index])

    def _render(self, values: Sequence[torch.Tensor], pixels: Optional[torch.Tensor]) -> torch.Tensor:
        simulator = self.simulator(values)
        image = simulator.run(pixels=pixels) if pixels is not None else simulator.run().reshape(-1)
        self.evaluations += 1
        if self._on_evaluation is not None:
            self._on_evaluation()
        return image

    def expected(self, x: torch.Tensor, pixels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Expected counts (float64) at the flat ``pixels`` (all pixels, flat, when None)."""
        with torch.no_grad():
            image = self._render(self._values(x), pixels).to(torch.float64)
        return image * self._scale(x) + (self.background if pixels is None else self.background[pixels])

    def expected_and_jacobian(self, x: torch.Tensor, pixels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Expected counts (n,) and their Jacobian (n, P) at the flat ``pixels``, float64.

        Column ``p`` is the exact derivative with respect to parameter ``p`` from one
        forward-mode pass; the scale's column is the image itself.
        """
        columns = []
        image = None
        with torch.no_grad():
            for p in range(len(self.parameters)):
                if p == self._scale_index:
                    columns.append(None)
                    continue
                with forward_ad.dual_level():
                    values = self._values(x)
                    values[p] = forward_ad.make_dual(values[p], torch.ones_like(values[p]))
                    primal, tangent = forward_ad.unpack_dual(self._render(values, pixels))
                image = primal.to(torch.float64)
                columns.append(torch.zeros_like(image) if tangent is None else tangent.to(torch.float64))
            if image is None:
                image = self._render(self._values(x), pixels).to(torch.float64)
        scale = self._scale(x)
        jacobian = torch.stack([image if column is None else column * scale for column in columns], dim=1)
        return image * scale + self.background[pixels], jacobian

    # ------------------------------------------------------------------ geometry of the spots
    def spot_geometry(self, values: Sequence[torch.Tensor], slow_px: torch.Tensor, fast_px: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where spots at fractional pixel positions (0 is the centre of the first pixel) point,
        and the crystal they should index with, in float64 and differentiable in ``values``.

        Returns
        -------
        q_per_A : tensor (n, 3)
            Scattering vectors ``(s − s₀)/λ`` for the central wavelength, Å⁻¹.
        direction : tensor (n, 3)
            Unit diffracted directions ``s``.
        cells_A : tensor (domains, 3, 3)
            Rows a, b, c (Å) of every mosaic domain at the middle phi step.
        """
        simulator = self.simulator(values, torch.float64)
        prepared = simulator.prepare()
        geometry = prepared.geometry
        fast = (fast_px.to(self.device, torch.float64) + 0.5) * geometry.pixel_size_m
        slow = (slow_px.to(self.device, torch.float64) + 0.5) * geometry.pixel_size_m
        direction = unit(geometry.pix0_m + fast[:, None] * geometry.fdet + slow[:, None] * geometry.sdet)
        q_per_A = (direction - geometry.beam) / (simulator.beam.wavelength_m * 1e10)
        cells = prepared.cell_vectors_m
        cells_A = cells[cells.shape[0] // 2] * 1e10
        return q_per_A, direction, cells_A

    def pixel_in_reciprocal_space_per_A(self, x: torch.Tensor) -> float:
        """How far one pixel at the detector's closest point reaches in reciprocal space:
        ``pixel size / (distance · λ)`` in Å⁻¹, the scale of a spot's position error."""
        with torch.no_grad():
            simulator = self.simulator(list(x.to(self.device).unbind()), torch.float64)
            geometry = simulator.detector.geometry()
            wavelength_A = float(simulator.beam.wavelength_m) * 1e10
            return float(geometry.pixel_size_m / geometry.close_distance_m.abs()) / wavelength_A

    def reflection_width_per_A(self, x: torch.Tensor) -> float:
        """Reciprocal-space width of a reflection, ``1 / min(N · cell length)`` in Å⁻¹: how far off
        the Ewald sphere a lattice point of a still still diffracts."""
        with torch.no_grad():
            crystal = self.simulator(list(x.to(self.device).unbind()), torch.float64).crystal
            lengths = torch.stack([torch.linalg.vector_norm(v) for v in crystal.real_space_vectors_A()])
            return float(1.0 / (lengths * crystal.n_cells()).min())

    def domain_rotations(self, x: torch.Tensor, spreads_deg: torch.Tensor) -> torch.Tensor:
        """Lab-frame rotations of the mosaic domains for each of the spreads, (S, domains, 3, 3), float64."""
        with torch.no_grad():
            simulator = self.simulator(list(x.to(self.device).unbind()), torch.float64)
            return simulator.crystal.mosaic_rotations(spreads_deg.to(self.device, torch.float64))


def _table(structure_factors, default_F: float, dtype: torch.dtype, device: torch.device) -> StructureFactors:
    """The structure factors as one table in ``dtype`` on ``device``."""
    if isinstance(structure_factors, StructureFactors):
        grid, metadata, default_F = structure_factors.grid, structure_factors.metadata, structure_factors.default_F
    elif structure_factors is not None:
        grid, metadata = structure_factors
    else:
        grid, metadata = None, None
    return StructureFactors(grid, metadata, float(default_F), dtype=dtype, device=device)
