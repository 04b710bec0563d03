"""Crystal symmetry of structure factors: the asymmetric unit and its parameters.

A :class:`ReflectionSet` lists the reflections of a space group's reciprocal asymmetric unit
(ASU) to a resolution, in gemmi's ASU convention, and numbers the amplitudes that a refinement
of many shots shares: one per ASU reflection, or with ``anomalous=True`` one per Friedel mate
of every acentric reflection. It maps any P1 Miller index to its parameter
(:meth:`ReflectionSet.parameter_of`), expands parameter values into the P1 table that a crystal
looks up (:meth:`ReflectionSet.structure_factors`) and averages a P1 table back into parameter
values (:meth:`ReflectionSet.from_structure_factors`).

gemmi (``pip install nanobrag-torch[io]``) gives the space group's operations and ASU; it is
imported when a set is made.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch

from .structure_factors import StructureFactors

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[Sequence[int]]]


def _gemmi():
    """The gemmi module; ImportError naming the extra to install."""
    try:
        import gemmi
    except ImportError:
        raise ImportError("crystal symmetry needs gemmi: pip install nanobrag-torch[io]") from None
    return gemmi


class ReflectionSet:
    """The ASU reflections of a space group to a resolution, and their amplitude parameters.

    Parameter layout: parameter ``i < n`` is ASU reflection ``hkl[i]`` (its F, or with
    ``anomalous=True`` its F(+), the amplitude of ``hkl[i]`` and of its symmetry equivalents);
    with ``anomalous=True`` parameters ``n … n + n_acentric − 1`` are the F(−) (the amplitude of
    ``−hkl[i]`` and its equivalents) of the acentric ASU reflections in ASU order. A centric
    reflection has one parameter: its Friedel mates are equivalent.

    Parameters
    ----------
    space_group : str
        Hermann–Mauguin symbol (``"P 43 21 2"``) or anything ``gemmi.SpaceGroup`` reads.
    cell_A_deg : sequence of 6 floats
        a, b, c in Å and α, β, γ in degrees.
    d_min_A : float
        Resolution limit in Å: reflections with d ≥ d_min_A are listed.
    anomalous : bool
        Separate parameters for the Friedel mates of acentric reflections.

    Attributes
    ----------
    space_group : str
        gemmi's Hermann–Mauguin symbol of the group.
    cell_A_deg : tuple of 6 floats
        As given (Å, degrees).
    d_min_A : float
        As given (Å).
    anomalous : bool
        As given.
    hkl : ndarray of int64 (n, 3)
        The ASU reflections to ``d_min_A``, systematic absences left out, in gemmi's ASU
        convention and order.
    centric : ndarray of bool (n,)
        Which of them are centric.
    p1_hkl : ndarray of int64 (m, 3)
        Every P1 index (both Friedel mates, absences included, 000 left out) to ``d_min_A``:
        the indices of the table that :meth:`structure_factors` fills.

    Raises
    ------
    ImportError
        gemmi is not installed.
    ValueError
        An unknown space group, a cell that is not 6 positive numbers, or ``d_min_A`` ≤ 0.
    """

    def __init__(self, space_group: str, cell_A_deg: Sequence[float], d_min_A: float, anomalous: bool = False):
        gemmi = _gemmi()
        try:
            group = gemmi.SpaceGroup(space_group)
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"ReflectionSet: space_group = {space_group!r} is not a space group ({error})") from None
        cell = tuple(float(v) for v in cell_A_deg)
        if len(cell) != 6 or not all(np.isfinite(cell)) or min(cell) <= 0:
            raise ValueError(f"ReflectionSet: cell_A_deg = {tuple(cell_A_deg)!r} must be 6 positive numbers "
                             f"(a, b, c in Å, α, β, γ in degrees)")
        if not (np.isfinite(d_min_A) and d_min_A > 0):
            raise ValueError(f"ReflectionSet: d_min_A = {d_min_A!r} must be a number > 0")
        unit_cell = gemmi.UnitCell(*cell)
        self.space_group = group.hm
        self.cell_A_deg = cell
        self.d_min_A = float(d_min_A)
        self.anomalous = bool(anomalous)
        self.hkl = np.asarray(gemmi.make_miller_array(unit_cell, group, self.d_min_A), dtype=np.int64).reshape(-1, 3)
        operations = group.operations()
        self.centric = np.asarray(operations.centric_flag_array(self.hkl.astype(np.int32)), dtype=bool)
        self.p1_hkl = np.asarray(gemmi.make_miller_array(unit_cell, gemmi.SpaceGroup("P 1"), self.d_min_A,
                                                         unique=False), dtype=np.int64).reshape(-1, 3)
        self._rotations = np.array([np.array(op.rot, dtype=np.int64) // op.DEN for op in operations.sym_ops])
        order = np.argsort(_keys(self.hkl))
        self._sorted_keys, self._sorted_rows = _keys(self.hkl)[order], order
        acentric = np.flatnonzero(~self.centric)
        self._minus_parameter = np.full(len(self.hkl), -1, dtype=np.int64)
        if self.anomalous:
            self._minus_parameter[acentric] = len(self.hkl) + np.arange(len(acentric))
        rows, plus = self._asu_rows_by_rotation(self.p1_hkl)
        minus = self._minus_parameter[np.maximum(rows, 0)]
        self._p1_parameter = np.where(rows >= 0, np.where(~plus & (minus >= 0), minus, rows), -1)
        self._p1_plus = plus & (rows >= 0)
        self._box_min = self.p1_hkl.min(axis=0)
        self._box_shape = tuple(int(v) for v in self.p1_hkl.max(axis=0) - self._box_min + 1)
        self._p1_row_grid = np.full(self._box_shape, -1, dtype=np.int64)
        offsets = self.p1_hkl - self._box_min
        self._p1_row_grid[offsets[:, 0], offsets[:, 1], offsets[:, 2]] = np.arange(len(self.p1_hkl))

    @property
    def n_parameters(self) -> int:
        """How many amplitudes the set has (one per ASU reflection, plus one per acentric one when anomalous)."""
        return len(self.hkl) + (int((~self.centric).sum()) if self.anomalous else 0)

    def _asu_rows_by_rotation(self, p1_hkl: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """ASU row (−1 where none) of every index, and whether it is equivalent to the row by a
        rotation (True) or only to its Friedel mate (False), by trying every rotation of the
        group: made once, for :attr:`p1_hkl`."""
        rows = np.full(len(p1_hkl), -1, dtype=np.int64)
        plus = np.zeros(len(p1_hkl), dtype=bool)
        for sign in (1, -1):
            for rotation in self._rotations:
                found = self._row_of(sign * p1_hkl @ rotation)
                new = (rows < 0) & (found >= 0)
                rows[new] = found[new]
                plus[new] = sign > 0
        return rows, plus

    def p1_row_of(self, p1_hkl: ArrayLike) -> np.ndarray:
        """The row of :attr:`p1_hkl` of every Miller index, by one lookup in a grid over the
        index box.

        Parameters
        ----------
        p1_hkl : array-like of int (m, 3)
            Miller indices.

        Returns
        -------
        ndarray of int64 (m,)
            The row of ``p1_hkl`` that holds each index; −1 for 000 and for an index beyond
            ``d_min_A``.
        """
        indices = _as_indices(p1_hkl)
        offsets = indices - self._box_min
        inside = ((offsets >= 0) & (offsets < np.asarray(self._box_shape))).all(axis=1)
        rows = np.full(len(indices), -1, dtype=np.int64)
        kept = offsets[inside]
        rows[inside] = self._p1_row_grid[kept[:, 0], kept[:, 1], kept[:, 2]]
        return rows

    def _row_of(self, indices: np.ndarray) -> np.ndarray:
        """Row of each index in ``hkl``, −1 where it is not an ASU reflection."""
        keys = _keys(indices)
        position = np.clip(np.searchsorted(self._sorted_keys, keys), 0, len(self._sorted_keys) - 1)
        hit = self._sorted_keys[position] == keys
        return np.where(hit, self._sorted_rows[position], -1)

    def parameter_of(self, p1_hkl: ArrayLike) -> np.ndarray:
        """The parameter of every P1 Miller index.

        Parameters
        ----------
        p1_hkl : array-like of int (m, 3)
            Miller indices.

        Returns
        -------
        ndarray of int64 (m,)
            The parameter index (see the class's layout): equal for symmetry equivalents; with
            ``anomalous=True`` different for the Friedel mates of an acentric reflection; −1 for
            a systematic absence, 000, or an index beyond ``d_min_A``.
        """
        rows = self.p1_row_of(p1_hkl)
        return np.where(rows >= 0, self._p1_parameter[rows], -1)

    def is_plus(self, p1_hkl: ArrayLike) -> np.ndarray:
        """Whether each index is equivalent to its ASU reflection by a rotation (the F(+) half).

        Parameters
        ----------
        p1_hkl : array-like of int (m, 3)
            Miller indices.

        Returns
        -------
        ndarray of bool (m,)
            True for the indices equivalent to an ASU reflection by a rotation of the group
            (gemmi's odd ISYM), False for those equivalent only to its Friedel mate and for
            those of no ASU reflection. Centric indices are both; they read True.
        """
        rows = self.p1_row_of(p1_hkl)
        return (rows >= 0) & self._p1_plus[rows]

    @property
    def asu_rows_of_parameters(self) -> Tuple[np.ndarray, np.ndarray]:
        """The ASU row and Friedel sign of every parameter.

        Returns
        -------
        rows : ndarray of int64 (n_parameters,)
            Row of ``hkl`` that each parameter is the amplitude of.
        signs : ndarray of int64 (n_parameters,)
            +1 for F (or F(+)), −1 for F(−) (the amplitude of ``−hkl[row]``).
        """
        n = len(self.hkl)
        minus_rows = np.flatnonzero(self._minus_parameter >= 0)
        rows = np.concatenate([np.arange(n, dtype=np.int64), minus_rows])
        signs = np.concatenate([np.ones(n, dtype=np.int64), -np.ones(len(minus_rows), dtype=np.int64)])
        return rows, signs

    def structure_factors(self, values: Union[np.ndarray, torch.Tensor], default_F: float = 0.0) -> StructureFactors:
        """The P1 table of amplitudes that parameter values give.

        Parameters
        ----------
        values : tensor or ndarray (n_parameters,)
            Amplitudes (electrons) in the class's layout. A tensor with ``requires_grad=True``
            keeps its graph: the table is a gather of it.
        default_F : float
            Amplitude (electrons) of the table's entries that are no reflection of the set
            (systematic absences, 000, indices of the index box beyond ``d_min_A``) and of the
            StructureFactors outside the box.

        Returns
        -------
        StructureFactors
            Over the box of :attr:`p1_hkl`, in the dtype and on the device of ``values``
            (float64 on the CPU for an ndarray).

        Raises
        ------
        ValueError
            ``values`` does not hold ``n_parameters`` numbers.
        """
        values = _as_tensor(values)
        if values.shape != (self.n_parameters,):
            raise ValueError(f"ReflectionSet.structure_factors: values has shape {tuple(values.shape)}, expected "
                             f"({self.n_parameters},) (the set's n_parameters)")
        extended = torch.cat([values, values.new_full((1,), float(default_F))])
        lookup = np.where(self._p1_parameter >= 0, self._p1_parameter, self.n_parameters)
        return self.p1_structure_factors(extended[torch.from_numpy(lookup).to(values.device)], default_F)

    def p1_structure_factors(self, values: Union[np.ndarray, torch.Tensor], default_F: float = 0.0) -> StructureFactors:
        """The table of amplitudes given for every P1 index of :attr:`p1_hkl`.

        Parameters
        ----------
        values : tensor or ndarray (m,)
            Amplitudes (electrons) of ``p1_hkl``'s rows. A tensor keeps its graph.
        default_F : float
            Amplitude of the other entries of the index box (000, indices beyond ``d_min_A``)
            and of the StructureFactors outside the box.

        Returns
        -------
        StructureFactors
            Over the box of :attr:`p1_hkl`, in the dtype and on the device of ``values``
            (float64 on the CPU for an ndarray).

        Raises
        ------
        ValueError
            ``values`` does not hold one number per row of ``p1_hkl``.
        """
        values = _as_tensor(values)
        if values.shape != (len(self.p1_hkl),):
            raise ValueError(f"ReflectionSet.p1_structure_factors: values has shape {tuple(values.shape)}, expected "
                             f"({len(self.p1_hkl)},) (one per row of p1_hkl)")
        shape = self._box_shape
        lookup = np.where(self._p1_row_grid >= 0, self._p1_row_grid, len(self.p1_hkl))
        extended = torch.cat([values, values.new_full((1,), float(default_F))])
        grid = extended[torch.from_numpy(lookup).to(values.device)]
        metadata = {}
        for axis, name in enumerate("hkl"):
            metadata.update({f"{name}_min": int(self._box_min[axis]),
                             f"{name}_max": int(self._box_min[axis]) + shape[axis] - 1, f"{name}_range": shape[axis]})
        return StructureFactors(grid, metadata, default_F=float(default_F))

    def from_structure_factors(self, structure_factors: StructureFactors) -> torch.Tensor:
        """Parameter values of a P1 table: the mean of its amplitudes over each parameter's indices.

        Parameters
        ----------
        structure_factors : StructureFactors
            A table (indices outside its box read its ``default_F``).

        Returns
        -------
        tensor (n_parameters,)
            In the table's dtype and on its device; the mean over the P1 indices to
            ``d_min_A`` of each parameter (its symmetry equivalents, and its Friedel mates
            unless the set is anomalous and the reflection acentric).
        """
        sf = structure_factors
        kept = self._p1_parameter >= 0
        device = sf.values.device
        indices = torch.from_numpy(self.p1_hkl[kept]).to(device=device, dtype=sf.values.dtype)
        amplitudes = sf.nearest(indices)
        parameters = torch.from_numpy(self._p1_parameter[kept]).to(device)
        total = amplitudes.new_zeros(self.n_parameters).index_add(0, parameters, amplitudes)
        counts = torch.bincount(parameters, minlength=self.n_parameters).to(amplitudes.dtype)
        return total / counts


def _as_tensor(values: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """A tensor as it is; anything else as a float64 CPU tensor."""
    return values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values, dtype=np.float64))


def _as_indices(p1_hkl: ArrayLike) -> np.ndarray:
    """Miller indices as an (m, 3) int64 array; ValueError naming the shape otherwise."""
    if isinstance(p1_hkl, torch.Tensor):
        p1_hkl = p1_hkl.detach().cpu().numpy()
    indices = np.asarray(p1_hkl)
    if indices.ndim != 2 or indices.shape[1] != 3:
        raise ValueError(f"Miller indices must be an (m, 3) array, got shape {indices.shape}")
    rounded = np.rint(indices)
    if not np.array_equal(rounded, indices):
        raise ValueError("Miller indices must be integers")
    return rounded.astype(np.int64)


_KEY_BASE = 1 << 20


def _keys(indices: np.ndarray) -> np.ndarray:
    """One int64 per index (|h|, |k|, |l| < 2**19)."""
    shifted = indices + _KEY_BASE // 2
    return (shifted[:, 0] * _KEY_BASE + shifted[:, 1]) * _KEY_BASE + shifted[:, 2]
