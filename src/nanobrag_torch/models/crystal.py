"""The crystal: unit cell, orientation, spindle (phi) and mosaic rotations, and its structure factors."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..config import DEFAULT_CELL_ANGLE_DEG, DEFAULT_CELL_LENGTH_A, BeamConfig, CrystalConfig
from ..geometry import as_tensor, rotation_about_axis, rotation_xyz, unit
from ..rng import mosaic_axes_and_factors
from ..structure_factors import Metadata, StructureFactorInput, StructureFactors, as_structure_factors


class Crystal:
    """A crystal built from a :class:`~nanobrag_torch.config.CrystalConfig` and its structure factors.

    Parameters
    ----------
    config : CrystalConfig
        The crystal's configuration: cell or orientation matrix, misset, mosaicity, Na Nb Nc,
        ``default_F``.
    structure_factors : StructureFactors or (grid, metadata), optional
        The amplitudes, as :func:`~nanobrag_torch.io.hkl.read_hkl_file` returns them, or the
        ``(grid, metadata)`` pair. Every reflection outside the table's index box has
        ``config.default_F`` (:func:`~nanobrag_torch.structure_factors.as_structure_factors`,
        the one rule). ``None``: every amplitude is ``config.default_F``.
    beam_config : BeamConfig, optional
        Accepted, and not used, so that code written for the tutorial's API
        (``Crystal(config, beam_config=..., device=..., dtype=...)``) runs: the crystal does
        not depend on the beam.
    device : torch.device, optional
        Device of every tensor the crystal makes. Default: the CPU.
    dtype : torch.dtype, optional
        Floating type of every tensor the crystal makes. Default: float64 (parity with C);
        float32 is faster.

    Raises
    ------
    ValueError
        ``structure_factors`` is no table, pair or None, or its grid and metadata disagree.
    """

    def __init__(self, config: CrystalConfig, structure_factors: Optional[StructureFactorInput] = None, *,
                 beam_config: Optional[BeamConfig] = None, device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None):
        self.config = config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype if dtype is not None else torch.float64
        self._table: Optional[StructureFactors] = as_structure_factors(
            structure_factors, config.default_F, dtype=self.dtype, device=self.device)
        self._hkl_data, self._hkl_metadata = self._table

    @property
    def hkl_data(self) -> Optional[torch.Tensor]:
        """The structure-factor table (h_range, k_range, l_range), or None; given to the
        constructor, it is in the crystal's dtype on its device.

        Kept for the tutorial's API: setting it (and :attr:`hkl_metadata`, in either order)
        replaces the crystal's structure factors, as the ``structure_factors`` argument does.
        The pair is checked when the crystal is next simulated.
        """
        return self._hkl_data

    @hkl_data.setter
    def hkl_data(self, grid: Optional[torch.Tensor]) -> None:
        self._hkl_data = grid
        self._table = None

    @property
    def hkl_metadata(self) -> Optional[Metadata]:
        """The index ranges of :attr:`hkl_data` (``h_min``, ``h_max``, ...), or None; settable likewise."""
        return self._hkl_metadata

    @hkl_metadata.setter
    def hkl_metadata(self, metadata: Optional[Metadata]) -> None:
        self._hkl_metadata = metadata
        self._table = None

    def _t(self, value) -> torch.Tensor:
        return as_tensor(value, self.device, self.dtype)

    # ------------------------------------------------------------------ cell
    def _cell_from_parameters(self) -> Tuple[torch.Tensor, ...]:
        cfg = self.config
        lengths = [self._t(DEFAULT_CELL_LENGTH_A if v is None else v) for v in (cfg.cell_a, cfg.cell_b, cfg.cell_c)]
        angles = [self._t(DEFAULT_CELL_ANGLE_DEG if v is None else v) * (math.pi / 180.0)
                  for v in (cfg.cell_alpha, cfg.cell_beta, cfg.cell_gamma)]
        return (*lengths, *angles)

    @staticmethod
    def _volume_A3(a, b, c, alpha, beta, gamma) -> torch.Tensor:
        s = (alpha + beta + gamma) / 2
        product = torch.sin(s) * torch.sin(s - alpha) * torch.sin(s - beta) * torch.sin(s - gamma)
        return 2 * a * b * c * torch.sqrt(product.abs())

    def _default_orientation(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reciprocal vectors of the cell's default orientation (nanoBragg's ``-cell``): a* along x,
        b* in the x-y plane; Å⁻¹."""
        a, b, c, alpha, beta, gamma = self._cell_from_parameters()
        volume = self._volume_A3(a, b, c, alpha, beta, gamma)
        a_star_len = b * c * torch.sin(alpha) / volume
        b_star_len = c * a * torch.sin(beta) / volume
        c_star_len = a * b * torch.sin(gamma) / volume
        cos_alpha_star = (torch.cos(beta) * torch.cos(gamma) - torch.cos(alpha)) / (torch.sin(beta) * torch.sin(gamma))
        cos_beta_star = (torch.cos(gamma) * torch.cos(alpha) - torch.cos(beta)) / (torch.sin(gamma) * torch.sin(alpha))
        cos_gamma_star = (torch.cos(alpha) * torch.cos(beta) - torch.cos(gamma)) / (torch.sin(alpha) * torch.sin(beta))
        sin_gamma_star = c / (volume * a_star_len * b_star_len)
        zero = torch.zeros_like(a)
        a_star = torch.stack([a_star_len, zero, zero])
        b_star = b_star_len * torch.stack([cos_gamma_star, sin_gamma_star, zero])
        c_star = c_star_len * torch.stack([
            cos_beta_star,
            (cos_alpha_star - cos_beta_star * cos_gamma_star) / sin_gamma_star,
            volume / (a * b * c * sin_gamma_star),
        ])
        return a_star, b_star, c_star

    def _misset_reciprocal(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.config
        if cfg.has_mosflm_matrix:
            vectors = [self._t(v).reshape(3) for v in (cfg.mosflm_a_star, cfg.mosflm_b_star, cfg.mosflm_c_star)]
        else:
            vectors = list(self._default_orientation())
        angles = [torch.deg2rad(self._t(angle)) for angle in cfg.misset_deg]
        if any(isinstance(angle, torch.Tensor) for angle in cfg.misset_deg) or any(
                float(angle) != 0.0 for angle in cfg.misset_deg):
            rotation = rotation_xyz(angles)
            vectors = [rotation @ v for v in vectors]
        return vectors[0], vectors[1], vectors[2]

    def real_space_vectors_A(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Real-space cell vectors a, b, c in Å, after misset, before phi and mosaic.

        With cell lengths given (``-cell``, alone or with a matrix) the vectors point along
        ``b* × c*``, ``c* × a*``, ``a* × b*`` and have those lengths; from a matrix alone they
        are ``V · (b* × c*)``, ... with ``V = 1 / (a* · (b* × c*))``.

        Returns
        -------
        a, b, c : tensor (3,)
            The three real-space vectors, in Å.
        """
        a_star, b_star, c_star = self._misset_reciprocal()
        bc = torch.linalg.cross(b_star, c_star)
        ca = torch.linalg.cross(c_star, a_star)
        ab = torch.linalg.cross(a_star, b_star)
        if self._uses_cell_lengths():
            a_len, b_len, c_len = self._cell_from_parameters()[:3]
            return unit(bc) * a_len, unit(ca) * b_len, unit(ab) * c_len
        volume = torch.reciprocal(torch.dot(a_star, bc))
        return bc * volume, ca * volume, ab * volume

    def reciprocal_vectors_per_A(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reciprocal vectors a*, b*, c* in Å⁻¹, recomputed from the real-space vectors as nanoBragg does.

        Returns
        -------
        a_star, b_star, c_star : tensor (3,)
            The three reciprocal vectors, in 1/Å.
        """
        a, b, c = self.real_space_vectors_A()
        bc = torch.linalg.cross(b, c)
        if self._uses_cell_lengths():
            # as C: V* = 1/V with V from the cell parameters, not from the rebuilt vectors
            inverse_volume = 1.0 / self._volume_A3(*self._cell_from_parameters())
        else:
            inverse_volume = torch.reciprocal(torch.dot(a, bc))
        return bc * inverse_volume, torch.linalg.cross(c, a) * inverse_volume, torch.linalg.cross(a, b) * inverse_volume

    def _uses_cell_lengths(self) -> bool:
        """True when the cell parameters set the lengths (no matrix, or a matrix with a cell)."""
        cfg = self.config
        return not cfg.has_mosflm_matrix or any(v is not None for v in (cfg.cell_a, cfg.cell_b, cfg.cell_c))

    # ------------------------------------------------------------- rotations
    def phi_angles_rad(self) -> torch.Tensor:
        """Spindle angle of every phi step, in radians: step k is at
        ``phi_start + k · osc / phi_steps``.

        Returns
        -------
        tensor (phi_steps,)
        """
        cfg = self.config
        start = self._t(cfg.phi_start_deg) * (math.pi / 180.0)
        step = self._t(cfg.osc_range_deg) * (math.pi / 180.0) / cfg.phi_steps
        ticks = torch.arange(cfg.phi_steps, device=self.device, dtype=self.dtype)
        return start + ticks * step

    def mosaic_rotations(self, spread_deg: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rotation matrices of the mosaic domains; domain 0 is the identity.

        The axes and relative angles come from the seeded generator (bit-compatible with C);
        the spread scales the angles, so the matrices are smooth in ``mosaic_spread_deg``.

        Parameters
        ----------
        spread_deg : tensor (S,), optional
            Spreads to evaluate instead of the configured ``mosaic_spread_deg`` (the orientation
            search of a refinement tries many at once).

        Returns
        -------
        tensor (domains, 3, 3), or (S, domains, 3, 3) for ``spread_deg`` (S,)
        """
        cfg = self.config
        axes, factors = mosaic_axes_and_factors(cfg.mosaic_seed, cfg.mosaic_domains)
        spread = cfg.mosaic_spread_deg if spread_deg is None else spread_deg[:, None]
        spread_rad = self._t(spread) * (math.pi / 180.0)
        axes_t = torch.as_tensor(axes, device=self.device, dtype=self.dtype)
        factors_t = torch.as_tensor(factors, device=self.device, dtype=self.dtype)
        return rotation_about_axis(axes_t, spread_rad * factors_t)

    def rotated_real_vectors_m(self, spindle_axis: torch.Tensor,
                               phi_angles_rad: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Real-space vectors for every phi step and mosaic domain, in metres.

        Phi first (about the spindle), then the mosaic rotation in the lab frame.

        Parameters
        ----------
        spindle_axis : tensor (3,)
            The rotation axis (any length).
        phi_angles_rad : tensor (phi_steps,), optional
            The spindle angles. Default: :meth:`phi_angles_rad` (the ``nanobragg`` command gives
            C's, ``nanobrag_torch.c_quirks.phi_carry_over``).

        Returns
        -------
        tensor (phi_steps, domains, 3, 3)
            ``[k, m]`` holds the rows a, b, c.
        """
        a, b, c = self.real_space_vectors_A()
        cell_A = torch.stack([a, b, c])
        angles = self.phi_angles_rad() if phi_angles_rad is None else phi_angles_rad
        phi = rotation_about_axis(unit(spindle_axis).expand(self.config.phi_steps, 3), angles)
        mosaic = self.mosaic_rotations()
        # Å to m in the rotations rather than in the cell, which carries a dataset refinement's
        # orientation (see geometry.rotation_xyz on products under forward-mode differentiation)
        rotation_A_to_m = (mosaic[None, :, :, :] @ phi[:, None, :, :]) * 1e-10
        return cell_A[None, None, :, :] @ rotation_A_to_m.transpose(-1, -2)

    # -------------------------------------------------------- other derived
    def n_cells(self) -> torch.Tensor:
        """Na, Nb, Nc as a tensor (3,).

        Returns
        -------
        tensor (3,)
            The number of unit cells along a, b and c.
        """
        return self._t(list(self.config.N_cells))

    def structure_factors(self) -> StructureFactors:
        """The structure factors on the crystal's device and in its dtype, with ``config.default_F``
        outside the table (:func:`~nanobrag_torch.structure_factors.as_structure_factors`; the
        simulator asks once per run). They are built once: a ``StructureFactors`` given to the
        constructor already on that device, in that dtype and with that ``default_F`` is used as
        it is, so that many crystals built from one table (a refinement builds one per
        evaluation) share it.

        Returns
        -------
        StructureFactors

        Raises
        ------
        ValueError
            :attr:`hkl_data` without :attr:`hkl_metadata`, or a shape that does not match it.
        """
        if self._table is None:
            self._table = as_structure_factors((self._hkl_data, self._hkl_metadata), self.config.default_F,
                                               dtype=self.dtype, device=self.device)
        return as_structure_factors(self._table, self.config.default_F, dtype=self.dtype, device=self.device)

    def size_m(self) -> torch.Tensor:
        """Crystal size ``(|a| Na, |b| Nb, |c| Nc)`` in metres.

        Returns
        -------
        tensor (3,)
            The crystal's edges along a, b and c, in m.
        """
        a, b, c = self.real_space_vectors_A()
        lengths = torch.stack([torch.linalg.vector_norm(v) for v in (a, b, c)]) * 1e-10
        return lengths * self.n_cells()
