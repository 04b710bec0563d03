"""The simulator as a function of the refined parameters.

:class:`ExperimentModel` renders the expected photon counts of chosen pixels for a vector of
parameter values, and their exact Jacobian by forward-mode automatic differentiation: one
forward pass per parameter, each holding only the rendered pixels.

Where its results live: pixel-level ones (:meth:`~ExperimentModel.expected`,
:meth:`~ExperimentModel.expected_and_jacobian`) on the working device, where the images are;
spot-level ones (:meth:`~ExperimentModel.spot_geometry`, :meth:`~ExperimentModel.domain_rotations`:
a few hundred spots, 3 × 3 matrices) on the CPU in float64, beside the parameter vectors and
the small linear algebra of the search and the solver.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence, Tuple

import torch
import torch.autograd.forward_ad as forward_ad

from .._docs import fill_doc
from ..geometry import unit
from ..models.crystal import Crystal
from ..models.detector import Detector
from ..simulator import Simulator
from ..structure_factors import StructureFactorInput, as_structure_factors
from .parameters import BACKGROUND_SCALE, SCALE, Parameter, configs_with


class ExperimentModel:
    """Expected counts ``scale · image + background_scale · background`` as a function of the
    refined parameters (each factor 1 unless refined).

    Parameters
    ----------
    configs : mapping
        ``{"crystal": CrystalConfig, "detector": DetectorConfig, "beam": BeamConfig}``.
    structure_factors : StructureFactors or tuple (grid, metadata) or None
        As :class:`~nanobrag_torch.models.crystal.Crystal` takes them (the same rule:
        :func:`~nanobrag_torch.structure_factors.as_structure_factors`); converted once to the
        simulation's dtype (and to float64 for the spot geometry) on ``device`` and shared by
        every evaluation.
    parameters : sequence of Parameter
        The refined parameters, in the order of the value vectors.
    background : tensor (pixels,)
        Expected background photons per pixel, flat (:class:`~nanobrag_torch.layout.PixelLayout`),
        float64, on ``device``.
    dtype, device
        Of the simulation.
    on_evaluation : callable, optional
        Called after every simulator run (for a progress bar).

    Attributes
    ----------
    evaluations : int
        Simulator runs so far (a forward-mode pass for one Jacobian column counts as one).
    """

    def __init__(self, configs: Mapping[str, object], structure_factors: StructureFactorInput,
                 parameters: Sequence[Parameter], background: torch.Tensor, dtype: torch.dtype, device: torch.device,
                 on_evaluation: Optional[Callable[[], None]] = None):
        self.configs = dict(configs)
        self._tables = {dt: as_structure_factors(structure_factors, configs["crystal"].default_F, dtype=dt,
                                                 device=device)
                        for dt in {dtype, torch.float64}}
        self.parameters = list(parameters)
        self.background = background
        self.dtype = dtype
        self.device = device
        self.evaluations = 0
        self._on_evaluation = on_evaluation
        self._scale_index = _position(self.parameters, SCALE)
        self._background_index = _position(self.parameters, BACKGROUND_SCALE)

    def simulator(self, values: Sequence[torch.Tensor], dtype: Optional[torch.dtype] = None) -> Simulator:
        """The simulator with the refined fields set to ``values``.

        Parameters
        ----------
        values : sequence of tensor ()
            One value per refined parameter (possibly carrying gradients or tangents).
        dtype : torch.dtype, optional
            Of the simulation. Default: the model's.

        Returns
        -------
        Simulator
        """
        dtype = dtype or self.dtype
        crystal_config, detector_config, beam_config = configs_with(self.configs, self.parameters, values)
        crystal = Crystal(crystal_config, self._tables[dtype], device=self.device, dtype=dtype)
        return Simulator(crystal, Detector(detector_config, device=self.device, dtype=dtype), beam_config)

    def _values(self, x: torch.Tensor) -> list:
        return list(x.to(device=self.device, dtype=self.dtype).unbind())

    def _scale(self, x: torch.Tensor) -> float:
        return 1.0 if self._scale_index is None else float(x[self._scale_index])

    def _background(self, x: torch.Tensor, pixels: Optional[torch.Tensor]) -> torch.Tensor:
        background = self.background if pixels is None else self.background[pixels]
        return background if self._background_index is None else background * float(x[self._background_index])

    def _render(self, values: Sequence[torch.Tensor], pixels: Optional[torch.Tensor]) -> torch.Tensor:
        simulator = self.simulator(values)
        image = simulator.run(pixels=pixels) if pixels is not None else simulator.run().reshape(-1)
        self.evaluations += 1
        if self._on_evaluation is not None:
            self._on_evaluation()
        return image

    @fill_doc
    def expected(self, x: torch.Tensor, pixels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Expected counts at the flat ``pixels``.

        Parameters
        ----------
        %(parameter_values)s
        pixels : tensor (n,) of int64, optional
            Flat pixel indices. Default: every pixel.

        Returns
        -------
        tensor (n,) or (total,)
            Float64, on the model's device.
        """
        with torch.no_grad():
            image = self._render(self._values(x), pixels).to(torch.float64)
        return image * self._scale(x) + self._background(x, pixels)

    @fill_doc
    def expected_and_jacobian(self, x: torch.Tensor, pixels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Expected counts and their Jacobian at the flat ``pixels``.

        Column ``p`` is the exact derivative with respect to parameter ``p`` from one
        forward-mode pass; the scale's column is the image itself, the background scale's the
        background.

        Parameters
        ----------
        %(parameter_values)s
        pixels : tensor (n,) of int64
            Flat pixel indices.

        Returns
        -------
        expected : tensor (n,)
        jacobian : tensor (n, P)
            Both float64, on the model's device.
        """
        columns = []
        image = None
        with torch.no_grad():
            for p in range(len(self.parameters)):
                if p in (self._scale_index, self._background_index):
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
        factors = {self._scale_index: image, self._background_index: self.background[pixels]}
        jacobian = torch.stack([factors[p] if column is None else column * scale for p, column in enumerate(columns)],
                               dim=1)
        return image * scale + self._background(x, pixels), jacobian

    # ------------------------------------------------------------------ geometry of the spots
    def spot_geometry(self, values: Sequence[torch.Tensor], panel: torch.Tensor, slow_px: torch.Tensor,
                      fast_px: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where spots at fractional pixel positions of their panels (0 is the centre of a
        panel's first pixel) point, and the crystal they should index with, in float64 on the
        CPU and differentiable in ``values``.

        Parameters
        ----------
        values : sequence of tensor
            The refined parameters' values.
        panel : tensor (n,) of int
            The spots' panels.
        slow_px, fast_px : tensor (n,)
            The spots' positions on their panels, pixels.

        Returns
        -------
        q_per_A : tensor (n, 3)
            Scattering vectors ``(s − s₀)/λ`` for the central wavelength, Å⁻¹.
        direction : tensor (n, 3)
            Unit diffracted directions ``s``.
        cells_A : tensor (domains, 3, 3)
            Rows a, b, c (Å) of every mosaic domain at the middle phi step.

        Raises
        ------
        ValueError
            A panel the detector does not have.
        """
        simulator = self.simulator(values, torch.float64)
        prepared = simulator.prepare()
        origin, fdet, sdet, pixel_size_m = _panel_frames(prepared, panel.to(self.device))
        fast = (fast_px.to(self.device, torch.float64) + 0.5) * pixel_size_m
        slow = (slow_px.to(self.device, torch.float64) + 0.5) * pixel_size_m
        direction = unit(origin + fast[:, None] * fdet + slow[:, None] * sdet)
        q_per_A = (direction - prepared.beam) / (simulator.beam.wavelength_m * 1e10)
        cells = prepared.cell_vectors_m
        cells_A = cells[cells.shape[0] // 2] * 1e10
        return q_per_A.cpu(), direction.cpu(), cells_A.cpu()

    @fill_doc
    def pixel_in_reciprocal_space_per_A(self, x: torch.Tensor) -> float:
        """How far one pixel at the detector's closest point reaches in reciprocal space:
        ``pixel size / (distance · λ)`` in Å⁻¹ (the largest over the panels), the scale of a
        spot's position error.

        Parameters
        ----------
        %(parameter_values)s

        Returns
        -------
        float
        """
        with torch.no_grad():
            simulator = self.simulator(list(x.to(self.device).unbind()), torch.float64)
            wavelength_A = float(simulator.beam.wavelength_m) * 1e10
            return max(float(g.pixel_size_m / g.close_distance_m.abs()) for g in simulator.detector.geometries()) \
                / wavelength_A

    @fill_doc
    def reflection_width_per_A(self, x: torch.Tensor) -> float:
        """Reciprocal-space width of a reflection, ``1 / min(N · cell length)`` in Å⁻¹: how far off
        the Ewald sphere a lattice point of a still still diffracts.

        Parameters
        ----------
        %(parameter_values)s

        Returns
        -------
        float
        """
        with torch.no_grad():
            crystal = self.simulator(list(x.to(self.device).unbind()), torch.float64).crystal
            lengths = torch.stack([torch.linalg.vector_norm(v) for v in crystal.real_space_vectors_A()])
            return float(1.0 / (lengths * crystal.n_cells()).min())

    @fill_doc
    def domain_rotations(self, x: torch.Tensor, spreads_deg: torch.Tensor) -> torch.Tensor:
        """Lab-frame rotations of the mosaic domains for each of the spreads (the domains' seed
        and count come from the crystal).

        Parameters
        ----------
        %(parameter_values)s
        spreads_deg : tensor (S,)
            Mosaic spreads in degrees.

        Returns
        -------
        tensor (S, domains, 3, 3)
            Float64, on the CPU.
        """
        with torch.no_grad():
            simulator = self.simulator(list(x.to(self.device).unbind()), torch.float64)
            return simulator.crystal.mosaic_rotations(spreads_deg.to(self.device, torch.float64)).cpu()


def _position(parameters: Sequence[Parameter], name: str) -> Optional[int]:
    """Where the parameter ``name`` lies among ``parameters``, or None."""
    return next((p for p, parameter in enumerate(parameters) if parameter.config == name), None)


def _panel_frames(prepared, panel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frame of each spot's panel: the corner of its pixel (0, 0) (m) and its fast and slow
    unit vectors, (n, 3) each, and its pixel size (m).

    The frames come from the prepared run's stacked panel planes
    (:class:`~nanobrag_torch.prepared.PanelPlanes`), so every panel the render knows is known here.

    Raises
    ------
    ValueError
        A panel the detector does not have.
    """
    planes = prepared.panels
    panels = planes.origin_m.shape[0]
    if panel.numel() and (int(panel.min()) < 0 or int(panel.max()) >= panels):
        raise ValueError(f"spot_geometry: spots on panels {int(panel.min())} to {int(panel.max())}, but the "
                         f"detector has {panels} panel(s)")
    return planes.origin_m[panel], planes.fast[panel], planes.slow[panel], planes.pixel_size_m[panel]
