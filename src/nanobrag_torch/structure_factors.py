"""Structure factors: a table of amplitudes and nanoBragg's rules for looking them up.

:class:`StructureFactors` holds the amplitudes ``F(h, k, l)`` of a box of Miller indices (as
:func:`nanobrag_torch.io.hkl.read_hkl_file` returns them) and ``default_F`` for every
reflection outside it. Its lookups are the only ones in the package: nearest-neighbour
(:meth:`~StructureFactors.nearest`, used by the fused kernel and by the autograd path alike),
the validity test of interpolation, and tricubic interpolation. :func:`as_structure_factors`
is the one rule that turns what a caller gives (a table, a ``(grid, metadata)`` pair, or
nothing) into the structure factors of a crystal.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch

from .geometry import same_device

Metadata = Dict[str, int]
"""Index ranges of a table: ``h_min``, ``h_max``, ``k_min``, ``k_max``, ``l_min``, ``l_max``."""

_BOUNDS = tuple(f"{axis}_{end}" for axis in "hkl" for end in ("min", "max"))
_EXACT_FLOAT_INDEX = 2 ** 24
"""Flat indices are computed in floating point (one matrix product), exact below 2**24 cells in
float32; larger tables use float64."""


class StructureFactors:
    """Structure-factor amplitudes with nanoBragg's lookup rules.

    The table is kept padded by one cell of ``default_F`` on every side, so that a lookup
    clamps any index into the padded box: an index outside the table reads ``default_F``
    without a mask.

    Parameters
    ----------
    grid : tensor (h_range, k_range, l_range), optional
        Amplitudes (electrons), ``grid[h - h_min, k - k_min, l - l_min]``. ``None``: no table,
        every amplitude is ``default_F``. A grid with ``requires_grad=True`` keeps its graph.
    metadata : dict, optional
        ``h_min``, ``h_max``, ``k_min``, ``k_max``, ``l_min``, ``l_max`` of the grid (more keys
        are ignored). Required with a grid.
    default_F : float
        Amplitude of every reflection outside the table (electrons).
    dtype : torch.dtype, optional
        Floating type of the lookups. Default: the grid's, or float64 without a grid.
    device : torch.device, optional
        Default: the grid's, or the CPU without a grid.

    Attributes
    ----------
    grid : tensor or None
        The table, on ``device`` in ``dtype``.
    metadata : dict or None
        As given.
    minimum, maximum : tuple of 3 ints or None
        (h_min, k_min, l_min) and (h_max, k_max, l_max).
    default_F : float
    values : tensor
        The padded table, flat, in C order. A gradient with respect to it flows back to
        ``grid`` (and to what ``grid`` was computed from); the border of ``default_F`` passes
        none on.

    Raises
    ------
    ValueError
        A grid without metadata, metadata without one of the six bounds, or a grid whose
        shape does not match the bounds.
    """

    def __init__(self, grid: Optional[torch.Tensor] = None, metadata: Optional[Metadata] = None,
                 default_F: float = 0.0, *, dtype: Optional[torch.dtype] = None,
                 device: Optional[torch.device] = None):
        self.default_F = float(default_F)
        if grid is None:
            self.grid = None
            self.metadata = None
            self.minimum = self.maximum = None
            values = torch.full((1, 1, 1), self.default_F, dtype=dtype or torch.float64, device=device)
        else:
            self.grid = grid.to(device=device or grid.device, dtype=dtype or grid.dtype)
            self.metadata = metadata
            self.minimum, self.maximum = _bounds(metadata, tuple(grid.shape))
            values = torch.nn.functional.pad(self.grid, (1, 1, 1, 1, 1, 1), value=self.default_F)
        self.values = values.reshape(-1)
        self._padded_shape = tuple(values.shape)
        exact = values.dtype if values.numel() < _EXACT_FLOAT_INDEX else torch.float64
        lowest = self.minimum if self.minimum is not None else (1, 1, 1)
        options = dict(dtype=exact, device=values.device)
        self._shift = torch.tensor([1 - m for m in lowest], **options)
        self._upper = torch.tensor([s - 1 for s in values.shape], **options)
        self._strides = torch.tensor([values.shape[1] * values.shape[2], values.shape[2], 1], **options)

    def __iter__(self) -> Iterator[object]:
        """The grid, then the metadata: a table unpacks as the ``(grid, metadata)`` pair of the
        seed tutorial (``hkl_grid, hkl_meta = read_hkl_file(path)``)."""
        return iter((self.grid, self.metadata))

    @property
    def has_table(self) -> bool:
        """True when a table of reflections was given."""
        return self.grid is not None

    @property
    def requires_grad(self) -> bool:
        """True when the amplitudes carry a gradient (the fused kernel gives it, see
        ``nanobrag_torch.kernels.bragg_sum``)."""
        return self.values.requires_grad

    def _padded_offsets(self, hkl_int: torch.Tensor) -> torch.Tensor:
        """Position in the padded table (..., 3), clamped into it, of integer-valued indices."""
        offset = (hkl_int.to(self._shift.dtype) + self._shift).clamp_(min=0)
        return torch.minimum(offset, self._upper)

    def nearest(self, hkl0: torch.Tensor) -> torch.Tensor:
        """Amplitudes at the integer-valued indices ``hkl0`` (..., 3); ``default_F`` outside the table.

        Parameters
        ----------
        hkl0 : tensor (..., 3)
            Integer-valued Miller indices h, k, l.

        Returns
        -------
        tensor (...)
            The amplitude at each index.
        """
        return self.values.take(self.positions(hkl0))

    def positions(self, hkl0: torch.Tensor) -> torch.Tensor:
        """Where :meth:`nearest` reads the integer-valued indices ``hkl0`` (..., 3) in the flat
        padded table :attr:`values`: the border of ``default_F`` for an index outside the table.

        Parameters
        ----------
        hkl0 : tensor (..., 3)
            Integer-valued Miller indices h, k, l.

        Returns
        -------
        tensor of int64 (...)
            Positions in :attr:`values`.
        """
        offset = self._padded_offsets(hkl0)
        if torch.compiler.is_compiling():
            index = (offset * self._strides).sum(-1)  # inductor fuses this into the kernel's loop
        else:
            index = offset @ self._strides  # eager: one BLAS call beats a strided last-axis sum
        return index.to(torch.int64)

    def padded_box(self) -> Tuple[np.ndarray, np.ndarray]:
        """The lookup of :meth:`nearest` as NumPy arrays, for the compiled CPU loops
        (``nanobrag_torch._bragg_kernels``; CPU tables only).

        Returns
        -------
        values : ndarray (h, k, l)
            The padded table (a view, in the table's dtype).
        shift : ndarray of float64 (3,)
            An integer-valued index ``hkl₀`` reads ``values[clamp(hkl₀ + shift, 0, shape − 1)]``.
        """
        return self.values.detach().reshape(self._padded_shape).numpy(), self._shift.to(torch.float64).numpy()

    def interpolation_valid(self, hkl: torch.Tensor) -> torch.Tensor:
        """Where tricubic interpolation is allowed: ``min + 2 <= h <= max - 2`` on every axis.

        Nowhere without a table.

        Parameters
        ----------
        hkl : tensor (..., 3)
            Fractional Miller indices h, k, l.

        Returns
        -------
        tensor of bool (...)
            Whether each index may be interpolated.
        """
        valid = torch.full(hkl.shape[:-1], self.has_table, dtype=torch.bool, device=hkl.device)
        if self.has_table:
            for axis in range(3):
                valid &= (hkl[..., axis] >= self.minimum[axis] + 2) & (hkl[..., axis] <= self.maximum[axis] - 2)
        return valid

    def tricubic(self, hkl: torch.Tensor) -> torch.Tensor:
        """Tensor-product 4-point Lagrange interpolation of the amplitude at fractional ``hkl`` (..., 3).

        Uses the 4×4×4 table points ``floor(h) - 1 … floor(h) + 2`` as nanoBragg's ``polin3``.
        Only meaningful where :meth:`interpolation_valid` holds; elsewhere points outside the
        table read ``default_F``.

        Parameters
        ----------
        hkl : tensor (..., 3)
            Fractional Miller indices h, k, l.

        Returns
        -------
        tensor (...)
            The interpolated amplitude at each index.
        """
        base = torch.floor(hkl.detach())
        nodes = torch.arange(-1.0, 3.0, dtype=hkl.dtype, device=hkl.device)
        weights = []
        for axis in range(3):
            t = (hkl[..., axis] - base[..., axis])[..., None]
            axis_weights = []
            for j in range(4):
                w = torch.ones_like(t)
                for i in range(4):
                    if i != j:
                        w = w * (t - nodes[i]) / (nodes[j] - nodes[i])
                axis_weights.append(w)
            weights.append(torch.cat(axis_weights, dim=-1))
        # offsets (..., 4, 3): the four points along each axis
        offsets = self._padded_offsets(base[..., None, :] + nodes[:, None]) * self._strides
        h, k, l = (offsets[..., axis] for axis in range(3))
        index = h[..., :, None, None] + k[..., None, :, None] + l[..., None, None, :]
        weight = weights[0][..., :, None, None] * weights[1][..., None, :, None] * weights[2][..., None, None, :]
        return (weight * self.values.take(index.to(torch.int64))).sum((-1, -2, -3))


StructureFactorInput = Union[StructureFactors, Tuple[Optional[torch.Tensor], Optional[Metadata]], None]
"""What a crystal takes as its structure factors: a :class:`StructureFactors`, the
``(grid, metadata)`` pair (a tuple or list), or None (no table)."""


def as_structure_factors(value: StructureFactorInput, default_F: float, *, dtype: Optional[torch.dtype] = None,
                         device: Optional[torch.device] = None) -> StructureFactors:
    """The structure factors of a crystal whose ``config.default_F`` is ``default_F``.

    The one rule, for every caller (:class:`~nanobrag_torch.models.crystal.Crystal`, and through it
    the simulator and :func:`~nanobrag_torch.refine.refine`): the table's grid is used as given,
    so the entries of its index box that a file does not list keep the value the reader filled
    them with (:func:`~nanobrag_torch.io.hkl.read_hkl_file`'s ``default_F``); every reflection
    outside the box has the crystal's ``default_F``, whatever ``default_F`` a
    :class:`StructureFactors` carries. A :class:`StructureFactors` and its ``(grid, metadata)``
    pair thus give the same image, as nanoBragg's ``-hkl`` with ``-default_F`` does.

    Parameters
    ----------
    value : StructureFactors, (grid, metadata) or None
        The table (``grid`` a tensor (h_range, k_range, l_range) of amplitudes in electrons,
        ``metadata`` its index ranges), or None for none.
    default_F : float
        Amplitude (electrons) of every reflection outside the table: the crystal's.
    dtype : torch.dtype, optional
        Of the lookups. Default: the grid's (float64 without a grid).
    device : torch.device, optional
        Default: the grid's (the CPU without a grid).

    Returns
    -------
    StructureFactors
        ``value`` itself when it is a :class:`StructureFactors` with this ``default_F``, dtype and
        device (so that the crystals of a refinement share one table, and a grid's graph is kept);
        otherwise a new table.

    Raises
    ------
    ValueError
        ``value`` is neither a :class:`StructureFactors`, a pair nor None; or the pair's grid
        and metadata do not agree (see :class:`StructureFactors`).
    """
    default_F = float(default_F)
    if isinstance(value, StructureFactors):
        if (value.default_F == default_F and (dtype is None or value.values.dtype == dtype)
                and (device is None or same_device(value.values.device, torch.device(device)))):
            return value
        grid, metadata = value
    elif value is None:
        grid, metadata = None, None
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        grid, metadata = value
    else:
        raise ValueError(f"structure factors must be a StructureFactors, a (grid, metadata) pair or None, got "
                         f"{type(value).__name__}")
    return StructureFactors(grid, metadata, default_F, dtype=dtype, device=device)


def _bounds(metadata: Optional[Metadata], shape: Tuple[int, ...]) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """(h_min, k_min, l_min) and (h_max, k_max, l_max) of ``metadata``, checked against the grid's shape."""
    if metadata is None:
        raise ValueError("structure factors: a table (hkl_data) needs its metadata (hkl_metadata: h_min, h_max, "
                         "k_min, ...), as read_hkl_file returns them")
    missing = [key for key in _BOUNDS if key not in metadata]
    if missing:
        raise ValueError(f"structure factors: the metadata lacks {', '.join(missing)} (has {sorted(metadata)})")
    minimum = tuple(int(metadata[f"{axis}_min"]) for axis in "hkl")
    maximum = tuple(int(metadata[f"{axis}_max"]) for axis in "hkl")
    expected = tuple(high - low + 1 for low, high in zip(minimum, maximum))
    if shape != expected:
        ranges = ", ".join(f"{axis} {low}..{high}" for axis, low, high in zip("hkl", minimum, maximum))
        raise ValueError(f"structure factors: the table (hkl_data) has shape {shape} but the metadata's index "
                         f"ranges ({ranges}) need {expected}")
    return minimum, maximum
