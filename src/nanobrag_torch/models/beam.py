"""The beam: its sources, from divergence and dispersion grids or an explicit list."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .._docs import fill_doc
from ..config import BeamConfig
from ..geometry import as_tensor, rotation_about_axis, unit, unit_or_zero


@dataclass(frozen=True)
class SamplingAxis:
    """One resolved sampling axis: number of points, full range and step (radians or fraction).

    Attributes
    ----------
    count : int
        Number of points (≥ 1).
    range : float
        Full range the points span, in radians (divergence) or as a fraction (dispersion); 0 for
        one point.
    step : float
        Distance between neighbouring points, in the unit of ``range``; 0 for one point.
    """

    count: int
    range: float
    step: float


def resolve_sampling(count: Optional[int], range_: Optional[float], step: Optional[float],
                     range_if_only_count: float = 1.0) -> SamplingAxis:
    """Complete a (count, range, step) triple with nanoBragg's rules.

    Without a count, a range and a step give ``ceil(range / step)`` points, and a range or a
    step alone gives two points that far apart. A count alone spans ``range_if_only_count``;
    with a range, ``max(count, 2)`` points span it; with only a step, it gives two points a
    step apart (as C). Nothing given, or a range or step that ends up ≤ 0, is one point.

    Parameters
    ----------
    count : int, optional
        Number of points (≥ 1); ``None`` means not given.
    range_ : float, optional
        Full range (≥ 0); ``None`` means not given.
    step : float, optional
        Step (> 0); ``None`` means not given.
    range_if_only_count : float
        Range used when only the count is given (nanoBragg uses 1: one radian, or 100 %).

    Returns
    -------
    SamplingAxis
        The completed axis.
    """
    has_count, has_range, has_step = count is not None, range_ is not None, step is not None
    count_value = count if has_count else 0
    range_value = range_ if has_range else -1.0
    step_value = step if has_step else -1.0
    if not has_count:
        if has_step and has_range:
            count_value = int(math.ceil(range_value / step_value))
        elif has_range:
            step_value, count_value = range_value, 2
        elif has_step:
            range_value, count_value = step_value, 2
        else:
            return SamplingAxis(1, 0.0, 0.0)
    else:
        if not has_range and not has_step:
            range_value = range_if_only_count
            step_value = range_value / count_value
        elif not has_range:
            range_value, count_value = step_value, 2
        elif not has_step:
            count_value = max(count_value, 2)
            step_value = range_value / (count_value - 1)
    if range_value <= 0 or step_value <= 0 or count_value <= 0:
        return SamplingAxis(1, 0.0, 0.0)
    return SamplingAxis(count_value, range_value, step_value)


@fill_doc
class Beam:
    """Incident directions and wavelengths of every source of a :class:`BeamConfig`.

    Parameters
    ----------
    config : BeamConfig
        Wavelength, divergence, dispersion or explicit sources, polarization and fluence.
    %(device)s
    %(dtype)s
    """

    def __init__(self, config: BeamConfig, device: Optional[torch.device] = None,
                 dtype: torch.dtype = torch.float64):
        self.config = config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype

    def _t(self, value) -> torch.Tensor:
        return as_tensor(value, self.device, self.dtype)

    @property
    def wavelength_m(self) -> torch.Tensor:
        """Central wavelength in metres."""
        return self._t(self.config.wavelength_A) * 1e-10

    def divergence_axes(self) -> Tuple[SamplingAxis, SamplingAxis, SamplingAxis]:
        """Resolved horizontal and vertical divergence (radians) and dispersion (fraction).

        Returns
        -------
        horizontal, vertical, dispersion : SamplingAxis
            The three axes, completed by ``resolve_sampling``.
        """
        cfg = self.config

        def mrad(value):
            return None if value is None else value * 1e-3

        horizontal = resolve_sampling(cfg.hdivsteps, mrad(cfg.hdivrange_mrad), mrad(cfg.hdivstep_mrad))
        vertical = resolve_sampling(cfg.vdivsteps, mrad(cfg.vdivrange_mrad), mrad(cfg.vdivstep_mrad))
        dispersion = resolve_sampling(cfg.dispersion_steps, cfg.dispersion_percent / 100.0, None)
        return horizontal, vertical, dispersion

    def sources(self, beam_direction: torch.Tensor, polarization_axis: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Incident propagation directions and wavelengths of all sources.

        Parameters
        ----------
        beam_direction : tensor (3,)
            Unit propagation direction of the central beam.
        polarization_axis : tensor (3,)
            Unit E-vector axis; vertical divergence rotates about it.

        Returns
        -------
        incident : tensor (sources, 3)
            Unit propagation directions.
        wavelength_m : tensor (sources,)
            Wavelength of every source, in m.
        """
        cfg = self.config
        if cfg.sources is not None:
            positions = torch.stack([self._t(list(position)) for position, _ in cfg.sources])
            wavelengths = torch.stack([self._t(wavelength) for _, wavelength in cfg.sources]) * 1e-10
            return -unit(positions), wavelengths
        horizontal, vertical, dispersion = self.divergence_axes()
        # zero for a beam along the polarization axis (nanoBragg's unitize): a rotation about it
        # only scales the direction by cos(hdiv), which the unit vector below takes off, as in C
        vert_axis = unit_or_zero(torch.linalg.cross(beam_direction, polarization_axis))
        directions = []
        for a in range(horizontal.count):
            hdiv = a * horizontal.step - horizontal.range / 2
            for b in range(vertical.count):
                vdiv = b * vertical.step - vertical.range / 2
                if cfg.round_div and self._outside_ellipse(hdiv, vdiv, horizontal, vertical):
                    continue
                rotated = rotation_about_axis(polarization_axis, self._t(vdiv)) @ beam_direction
                rotated = rotation_about_axis(vert_axis, self._t(hdiv)) @ rotated
                directions.append(unit(rotated))
        incident, wavelengths = [], []
        for direction in directions:
            for k in range(dispersion.count):
                incident.append(direction)
                wavelengths.append(self.wavelength_m * (1.0 + k * dispersion.step - dispersion.range / 2))
        return torch.stack(incident), torch.stack(wavelengths)

    @staticmethod
    def _outside_ellipse(hdiv: float, vdiv: float, horizontal: SamplingAxis, vertical: SamplingAxis) -> bool:
        """nanoBragg's elliptical trimming; never trims when either range is 0."""
        if horizontal.range <= 0 or vertical.range <= 0:
            return False
        even_h = 1 - horizontal.count % 2
        even_v = 1 - vertical.count % 2
        # C divides by range²; dividing each angle by the range first is the same and cannot
        # underflow to a division by zero for a range such as 1e-188 rad
        test = (hdiv / horizontal.range) ** 2 - (horizontal.step / horizontal.range) ** 2 / 4.0 * even_h
        test += (vdiv / vertical.range) ** 2 - (vertical.step / vertical.range) ** 2 / 4.0 * even_v
        return test * 4.0 > 1.1
