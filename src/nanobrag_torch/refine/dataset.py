"""Refining many stills together: :func:`refine_dataset`.

Serial crystallography records thousands of still shots of randomly oriented microcrystals,
each with its own orientation, brightness and background, all sharing one set of structure
factors. :func:`refine_dataset` models every pixel near the spots of every shot with the
simulator and refines, by alternation,

* per shot: the orientation (small rotations of the indexed one), an overall scale and the
  level of a water-scattering background (:func:`~nanobrag_torch.refine.shot_work.refine_geometry`);
* shared: one amplitude per reflection of the asymmetric unit (Friedel mates apart with
  ``anomalous=True``), which for fixed geometry is a convex problem
  (:mod:`nanobrag_torch.refine.amplitudes`), and any geometry the shots share that the call
  names (the detector's distance, beam centre or panels, ...:
  :mod:`nanobrag_torch.refine.shared_geometry`).

The shots are split into partitions once; each partition stays where it was prepared (this
process, or a Dask worker: :mod:`nanobrag_torch.refine.runners`), and each iteration sends it
only the amplitudes and brings back per-reflection sums and the shots' few parameters.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..config import BeamConfig, CrystalConfig
from ..models.crystal import Crystal
from ..models.detector import Detector
from ..structure_factors import StructureFactors
from .amplitude_errors import intensity_variance
from .amplitudes import solve_amplitudes
from .checkpoint import load_checkpoint, save_checkpoint
from .likelihoods import Likelihood, as_likelihood
from .merging import MergedAmplitudes, merge_integrated
from .parameters import Parameter
from .progress import Progress
from .runners import partition_runner
from .shared_geometry import shared_parameters, shared_step
from .shot_work import PER_SHOT, SHOT_PARAMETERS
from .solver import STEP_TOLERANCE_SIGMA
from .unmerged import UnmergedIntensities, unmerged_intensities

DEFAULT_CYCLES = 6
"""Alternations of the shots' geometry and the shared amplitudes at most."""

FIRST_CYCLE_PASSES = 2
"""With shared parameters, the first cycle's geometry steps (each shot's fit to its spots'
positions, then the shared step) are taken twice before the amplitudes: the shots' first
orientations are found with the detector's start geometry, and the second pass finds them again
with the refined one."""

AMPLITUDE_TOLERANCE_SIGMA = 0.05
"""The alternation stops when no amplitude moved by more than this many standard errors."""


@dataclass(frozen=True)
class Shot:
    """One still: its counts and the configurations it was recorded with.

    Parameters
    ----------
    observed : array, tensor or path
        Photons per pixel, ``(spixels, fpixels)`` or ``(n_panels, spixels, fpixels)`` (ADC
        offset removed), or the path of an image file that
        :func:`nanobrag_torch.io.images.read_image` reads (read when the shot is prepared, not
        before: a dataset larger than memory streams from disk).
    crystal : CrystalConfig
        The indexed orientation (MOSFLM vectors or a misset), cell, N_cells and mosaic model.
    detector : DetectorConfig or MultiPanelDetectorConfig
        The detector.
    beam : BeamConfig
        The beam; its ``water_size_um`` gives the shape of the background (its level is
        refined), or 100 µm of water when it is 0.
    name : str
        A name for messages and results (default: the shot's position).
    mask : array of bool, optional
        Pixels to use (True), of the image's shape; the detector's own mask, ROI and an image
        file's untrusted pixels apply as well.
    saturation_counts : float, optional
        Counts at and above which a pixel of ``observed`` is saturated (the detector's
        overload): such pixels are not compared. An image file's own overload value (CBF
        ``Count_cutoff``, NeXus ``saturation_value``, SMV 65535) applies without it.
    """

    observed: Any
    crystal: CrystalConfig
    detector: Any
    beam: BeamConfig
    name: str = ""
    mask: Any = None
    saturation_counts: Optional[float] = None


@dataclass
class ShotResult:
    """What :func:`refine_dataset` found for one shot.

    Attributes
    ----------
    name : str
        The shot's name.
    status : str
        ``"ok"`` for a refined shot; otherwise why it was left out of the shared parameters
        (``"too few spots"``, ``"saturated"``, ``"not indexed"``, ``"failed"``).
    reason : str
        The details behind a status other than ``"ok"`` (empty for ``"ok"``).
    crystal : CrystalConfig
        The refined orientation (reciprocal vectors, misset 0), with the shared crystal
        parameters' refined values; the start for a shot left out.
    detector : DetectorConfig or MultiPanelDetectorConfig
        The shot's detector with the shared detector parameters' refined values.
    values, stderr : dict of str to float
        The shot's parameters (``crystal.misset_deg[i]``: rotations about lab x, y, z of the
        indexed orientation, degrees; ``scale``; ``background_scale``) and their standard
        errors (with the amplitudes free: the module ``nanobrag_torch.refine.amplitude_errors``;
        NaN for a parameter held by ``per_shot``).
    converged : bool
        Whether its last geometry step met the convergence test.
    message : str
        How that step ended.
    pixels : int
        Pixels compared.
    """

    name: str
    status: str
    reason: str
    crystal: CrystalConfig
    detector: Any
    values: Dict[str, float]
    stderr: Dict[str, float]
    converged: bool
    message: str
    pixels: int

    @property
    def reciprocal_basis_per_A(self) -> np.ndarray:
        """(3, 3): columns a*, b*, c* in Å⁻¹ in the lab frame (the refined UB matrix)."""
        vectors = Crystal(self.crystal, dtype=torch.float64).reciprocal_vectors_per_A()
        return torch.stack(vectors, dim=1).numpy()


@dataclass
class DatasetResult:
    """The outcome of :func:`refine_dataset`.

    Attributes
    ----------
    shots : list of ShotResult
        One per shot, in the dataset's order.
    merged : MergedAmplitudes
        The refined amplitudes of the measured reflections of the asymmetric unit, with their
        standard errors (and the Friedel mates when anomalous).
    structure_factors : StructureFactors
        Every P1 index to ``d_min_A`` (unmeasured reflections keep their starting amplitude):
        what to simulate with.
    start : MergedAmplitudes
        The starting amplitudes (the conventional integration and merging, unless given).
    history : list of dict
        One entry per cycle: ``{"cycle", "loss", "shots_ok", "max_change_sigma"}`` (and
        ``"shared_change_sigma"``, the largest step of a shared parameter in its standard
        errors, when parameters are shared).
    shared_values, shared_stderr : dict of str to float
        The refined shared parameters (``refine_dataset(shared=...)``) and their standard
        errors, the shots' own parameters free and the amplitudes held (empty when none are
        shared).
    unmerged : UnmergedIntensities or None
        Every shot's intensities of its recorded reflections at the refined values, when
        :func:`refine_dataset` was asked for them (``unmerged=True``).
    """

    shots: List[ShotResult]
    merged: MergedAmplitudes
    structure_factors: StructureFactors
    start: MergedAmplitudes
    history: List[Dict[str, float]] = field(default_factory=list)
    shared_values: Dict[str, float] = field(default_factory=dict)
    shared_stderr: Dict[str, float] = field(default_factory=dict)
    unmerged: Optional[UnmergedIntensities] = None

    def write_mtz(self, path: Union[str, os.PathLike]) -> None:
        """Write the merged amplitudes as MTZ (H K L F SIGF, and F(+) SIGF(+) F(-) SIGF(-) when
        anomalous).

        Parameters
        ----------
        path : str or path
            The file; written atomically.
        """
        self.merged.write_mtz(path)

    def write_unmerged_mtz(self, path: Union[str, os.PathLike]) -> None:
        """Write every shot's intensities as an unmerged MTZ file (one row per reflection
        recorded on a shot: BATCH H K L M/ISYM I SIGI XDET YDET, the panel and the shot's
        refined parameters; :meth:`UnmergedIntensities.write_mtz
        <nanobrag_torch.refine.unmerged.UnmergedIntensities.write_mtz>`), as careless and
        reciprocalspaceship read them.

        Parameters
        ----------
        path : str or path
            The file; written atomically.

        Raises
        ------
        ValueError
            The refinement was run without ``unmerged=True``.
        """
        if self.unmerged is None:
            raise ValueError(f"write_unmerged_mtz({str(path)!r}): this result holds no per-shot intensities; "
                             "run refine_dataset(..., unmerged=True)")
        self.unmerged.write_mtz(path, [shot.values for shot in self.shots])


def refine_dataset(shots: Sequence[Shot], space_group: str, d_min_A: float, *,
                   structure_factors: Optional[StructureFactors] = None, anomalous: bool = False,
                   likelihood: Union[str, Likelihood] = "poisson", per_shot: Sequence[str] = PER_SHOT,
                   shared: Sequence[str] = (), cycles: int = DEFAULT_CYCLES, client=None,
                   checkpoint: Optional[Union[str, os.PathLike]] = None, unmerged: bool = False,
                   progress: Optional[bool] = None, dtype: torch.dtype = torch.float32) -> DatasetResult:
    """Refine many stills together: each shot's orientation, scale and background, and the
    shared amplitudes of the asymmetric unit.

    Parameters
    ----------
    shots : sequence of Shot
        The stills. Every image is checked before any work starts.
    space_group : str
        Hermann–Mauguin symbol, e.g. ``"P 43 21 2"``: the amplitudes are shared by the
        symmetry-equivalent reflections (gemmi maps them to the asymmetric unit).
    d_min_A : float
        Resolution limit of the refined reflections, Å.
    structure_factors : StructureFactors, optional
        Starting amplitudes. Default: :func:`~nanobrag_torch.refine.merging.integrate_and_merge`
        of the same shots (the conventional summation integration and mean merging).
    anomalous : bool
        Refine the Friedel mates of acentric reflections apart.
    likelihood : {"poisson", "gaussian", "mse"} or a likelihood object
        As for :func:`~nanobrag_torch.refine.refine`.
    per_shot : sequence of str
        What is refined per shot: ``"scale"`` (always) and any of ``"orientation"`` (else the
        indexed orientation is kept) and ``"background"`` (else a shot has no background
        term: for images whose background was subtracted). Default: all three.
    shared : sequence of str
        Parameters every shot shares besides the amplitudes, named as for
        :func:`~nanobrag_torch.refine.refine`: the detector's (``"detector.distance_mm"``,
        ``"detector.beam_center_f"``, a panel's or a group's move such as
        ``"detector.panels[2].shift_mm[0]"``, ``"detector.groups[0].rotation_deg[2]"``), the
        crystal's other than its orientation (``"crystal.N_cells[0]"``,
        ``"crystal.mosaic_spread_deg"``) and the beam's (``"beam.wavelength_A"``). Each starts
        from the value every shot gives it (they must agree) and is refined each cycle, after
        the shots' geometry steps, by a few Levenberg–Marquardt iterations together with every
        shot's orientation, scale and background, the amplitudes held (the module
        ``nanobrag_torch.refine.shared_geometry``). Default: none; what is not named is held
        at the shots' values.
    cycles : int
        Alternations of geometry and amplitudes at most (``DEFAULT_CYCLES``); the run stops
        earlier when no amplitude moved by more than ``AMPLITUDE_TOLERANCE_SIGMA`` standard
        errors.
    client : dask.distributed.Client, optional
        Run the shots' work on a Dask cluster: the shots are split among its workers once and
        stay there. Default: in this process (Dask is not imported).
    checkpoint : str or path, optional
        A file to write the state to after every cycle (atomically); when it exists and was
        written by the same call, the run resumes from it and ends at the same answer.
    unmerged : bool
        Also sum every shot's recorded reflections at the refined values
        (:attr:`DatasetResult.unmerged`, :meth:`DatasetResult.write_unmerged_mtz`): one render
        per shot at the end, and some 80 bytes per reflection and shot held by this process.
    progress : bool, optional
        Draw a progress bar (stage, cycle, shots done, loss). Default: when standard error is a
        terminal.
    dtype : torch.dtype
        Precision of the simulation.

    Returns
    -------
    DatasetResult

    Raises
    ------
    ValueError
        No shots, ``per_shot`` naming something else or leaving out the scale, ``shared``
        naming a shot's own parameter or one the shots give different values, a shot whose
        image is malformed (wrong shape, non-finite or negative counts; the error names the
        shot), or a checkpoint written by another call.
    """
    if len(shots) == 0:
        raise ValueError("refine_dataset: shots is empty")
    per_shot = _per_shot(per_shot)
    shots = list(shots)
    shared, shared_values = shared_parameters(shared, shots)
    shared_stderr = torch.full_like(shared_values, math.nan)
    for index, shot in enumerate(shots):
        shot_image(shot, index)
    likelihood = as_likelihood(likelihood)
    from ..symmetry import ReflectionSet

    reflections = ReflectionSet(space_group, cell_of(shots[0].crystal), d_min_A, anomalous=anomalous)
    bar = Progress(progress)
    try:
        runner = partition_runner(client, shots, likelihood, dtype, per_shot, on_shot=bar.shots)
        bar.stage("prepare shots")
        if structure_factors is None:  # the conventional integration, done where each shot is prepared
            start_set = ReflectionSet(space_group, reflections.cell_A_deg, d_min_A, anomalous=False)
            runner.prepare(start_set)
            start = merge_integrated(runner.start_spots(), start_set, anomalous=anomalous)
            values = start_values(start, reflections)
        else:
            runner.prepare()
            values = reflections.from_structure_factors(structure_factors).to(torch.float64)
            start = merged_amplitudes(reflections, values, torch.full_like(values, math.nan), 0)
        first_cycle, history = 0, []
        if checkpoint is not None:
            state = load_checkpoint(checkpoint, _fingerprint(shots, reflections, likelihood, per_shot, shared, cycles))
            if state is not None:
                first_cycle, values, history = state["cycle"], state["values"], state["history"]
                runner.set_shot_values(state["shot_values"])
                shared_values, shared_stderr = state["shared_values"], state["shared_stderr"]
                runner.set_shared(shared, shared_values)
        summaries = runner.summaries()
        scales, levels = _factors(summaries)
        step = None
        for cycle in range(first_cycle, cycles):
            shared_change = 0.0
            for _ in range(FIRST_CYCLE_PASSES if shared and cycle == 0 else 1):
                bar.stage(f"cycle {cycle + 1}: shots")
                runner.refine_geometry(reflections, values, scales, levels, first=cycle == 0)
                if shared:  # moves the shots' own parameters too; it reads them from the shots
                    bar.stage(f"cycle {cycle + 1}: shared geometry")
                    shared_values, shared_stderr, moved = shared_step(runner, reflections, values, shared,
                                                                      shared_values)
                    shared_change = max(shared_change, moved)
                summaries = runner.summaries()
                scales, levels = _factors(summaries)
            bar.stage(f"cycle {cycle + 1}: amplitudes")
            step = _amplitude_step(runner, reflections, values, scales, levels, likelihood)
            values, scales, levels = step.values, step.scales, step.levels
            bar.loss(step.loss)
            history.append({"cycle": cycle + 1, "loss": step.loss, "max_change_sigma": step.change,
                            "shots_ok": sum(s["status"] == "ok" for s in summaries)})
            if shared:
                history[-1]["shared_change_sigma"] = shared_change
            if checkpoint is not None:
                save_checkpoint(checkpoint, _fingerprint(shots, reflections, likelihood, per_shot, shared, cycles),
                                {"cycle": cycle + 1, "values": values, "history": history,
                                 "shot_values": [_with_factors(s["values"], scale, level)
                                                 for s, scale, level in zip(summaries, scales, levels)],
                                 "shared_values": shared_values, "shared_stderr": shared_stderr})
            if step.change <= AMPLITUDE_TOLERANCE_SIGMA and shared_change <= STEP_TOLERANCE_SIGMA:
                break
        if step is None:  # resumed after the last cycle: the amplitude step of the saved state
            step = _amplitude_step(runner, reflections, values, scales, levels, likelihood)
            values, scales, levels = step.values, step.scales, step.levels
        bar.stage("errors")
        shot_variance, shot_stderr = runner.errors(reflections, values, scales, levels, step.fisher)
        variance = intensity_variance(step.fisher, shot_variance, likelihood.covariance_factor(None, None, 0))
        summaries = runner.summaries()
        per_shot_intensities = None
        if unmerged:
            bar.stage("per-shot intensities")
            per_shot_intensities = unmerged_intensities(runner.spot_observations(reflections), reflections, values,
                                                        scales, levels)
    finally:
        bar.close()
        if "runner" in locals():
            runner.close()
    contributing = sum(s["status"] == "ok" for s in summaries)
    merged = merged_amplitudes(reflections, values, variance, contributing, step.observations)
    results = [_shot_result(s, scale, level, shot_stderr.get(s["index"], s["stderr"]))
               for s, scale, level in zip(summaries, scales, levels)]
    return DatasetResult(shots=results, merged=merged,
                         structure_factors=reflections.structure_factors(values), start=start, history=history,
                         shared_values=dict(zip((p.name for p in shared), shared_values.tolist())),
                         shared_stderr=dict(zip((p.name for p in shared), shared_stderr.tolist())),
                         unmerged=per_shot_intensities)


@dataclass(frozen=True)
class ShotImage:
    """A shot's image, read and checked (:func:`shot_image`).

    Attributes
    ----------
    counts : tensor (n_panels, spixels, fpixels) of float64
        Photon counts; 0 at untrusted pixels other than the saturated ones.
    untrusted : tensor of bool, same shape
        Pixels not to compare: an image file's untrusted pixels and the saturated ones.
    saturated : tensor of bool, same shape
        Pixels at or above the saturation (a subset of ``untrusted``).
    """

    counts: torch.Tensor
    untrusted: torch.Tensor
    saturated: torch.Tensor


def shot_image(shot: Shot, index: int) -> ShotImage:
    """A shot's counts, checked, with its untrusted and saturated pixels.

    Parameters
    ----------
    shot : Shot
        The shot; an image file is read.
    index : int
        Its position in the dataset (for messages).

    Returns
    -------
    ShotImage

    Raises
    ------
    ValueError
        The image does not have the detector's shape, or has non-finite or negative counts
        at trusted pixels; the message names the shot.
    """
    where = f"shot {index} ({shot.name!r})" if shot.name else f"shot {index}"
    observed, untrusted, saturated = shot.observed, None, None
    if isinstance(observed, (str, os.PathLike)):
        from ..io import read_image

        image = read_image(observed)
        observed, untrusted, saturated = image.counts, image.mask, image.saturated
    image = observed.detach() if isinstance(observed, torch.Tensor) else torch.as_tensor(np.asarray(observed))
    layout = Detector(shot.detector).layout
    try:
        image = layout.as_panels(image, f"{where}: observed").to(torch.float64)
    except ValueError as error:
        raise ValueError(str(error)) from None
    untrusted = (torch.zeros(image.shape, dtype=torch.bool) if untrusted is None
                 else layout.as_panels(torch.as_tensor(untrusted), f"{where}: the image file's mask"))
    saturated = (torch.zeros(image.shape, dtype=torch.bool) if saturated is None
                 else layout.as_panels(torch.as_tensor(saturated), f"{where}: the image file's mask"))
    saturation_counts = getattr(shot, "saturation_counts", None)  # a Shot, or a record with its first fields
    if saturation_counts is not None:
        if not saturation_counts > 0:
            raise ValueError(f"{where}: saturation_counts must be a number > 0, got {saturation_counts!r}")
        saturated = saturated | (image >= saturation_counts)
    untrusted = untrusted | saturated
    image = torch.where(untrusted & ~saturated, torch.zeros_like(image), image)
    bad = ~torch.isfinite(image)
    if bool(bad.any()):
        raise ValueError(f"{where}: observed has {int(bad.sum())} non-finite pixels (NaN or inf)")
    if bool((image < 0).any()):
        raise ValueError(f"{where}: observed has {int((image < 0).sum())} negative pixels (minimum "
                         f"{float(image.min()):g}): give photon counts with the ADC offset removed")
    return ShotImage(counts=image, untrusted=untrusted, saturated=saturated)


def cell_of(crystal: CrystalConfig) -> tuple:
    """The cell (a, b, c in Å, α, β, γ in degrees) of a crystal configuration.

    Parameters
    ----------
    crystal : CrystalConfig
        Cell parameters or MOSFLM vectors.

    Returns
    -------
    tuple of 6 floats
    """
    a, b, c = Crystal(crystal, dtype=torch.float64).real_space_vectors_A()

    def angle(u, v):
        return math.degrees(math.acos(float(torch.dot(u, v) / (u.norm() * v.norm()))))

    return (float(a.norm()), float(b.norm()), float(c.norm()), angle(b, c), angle(a, c), angle(a, b))


def start_values(merged: MergedAmplitudes, reflections) -> torch.Tensor:
    """Parameter values of merged amplitudes (in the set's layout); unmeasured ones get the
    median of the measured.

    Parameters
    ----------
    merged : MergedAmplitudes
        Amplitudes by ASU row of ``reflections``.
    reflections : ReflectionSet
        The refined set.

    Returns
    -------
    tensor (n_parameters,) of float64
    """
    rows, signs = reflections.asu_rows_of_parameters
    position = {tuple(hkl): i for i, hkl in enumerate(np.asarray(merged.hkl).tolist())}
    values = np.full(reflections.n_parameters, np.nan)
    for parameter, (row, sign) in enumerate(zip(rows, signs)):
        i = position.get(tuple(reflections.hkl[row].tolist()))
        if i is None:
            continue
        if merged.F_plus is not None and reflections.anomalous and not reflections.centric[row]:
            values[parameter] = (merged.F_plus if sign > 0 else merged.F_minus)[i]
        else:
            values[parameter] = merged.F[i]
    measured = np.isfinite(values)
    fill = float(np.median(values[measured])) if measured.any() else 1.0
    return torch.from_numpy(np.where(measured, values, fill))


def merged_amplitudes(reflections, values: torch.Tensor, variance_I: torch.Tensor, n_shots: int,
                      observations: Optional[torch.Tensor] = None) -> MergedAmplitudes:
    """Amplitudes by ASU row from parameter values and the variances of their intensities.

    ``sigma_F = sqrt(F² + sigma_I) − F``: ``sigma_I / (2 F)`` for a strong reflection (the delta
    method), ``sqrt(sigma_I)`` for one refined to 0 (the rule of
    :func:`~nanobrag_torch.refine.merging.integrate_and_merge`). With anomalous parameters the
    merged F of an acentric row is the amplitude of its two mates' mean intensity,
    ``sqrt((F(+)² + F(−)²) / 2)`` with variance ``(var I(+) + var I(−)) / 4``, or the one mate
    measured: the mates are two quantities, and a mean weighted by their errors would stand
    for a mixture of them that changes with the errors.

    Parameters
    ----------
    reflections : ReflectionSet
        The refined set.
    values : tensor (n_parameters,)
        Amplitudes.
    variance_I : tensor (n_parameters,)
        Variances of the intensities ``F²`` (NaN: not known).
    n_shots : int
        Shots that contributed.
    observations : tensor (n_parameters,) of int, optional
        Shots that recorded each parameter; a parameter no shot recorded is NaN. Default:
        every parameter given (amplitudes handed in, not measured), with no observation.

    Returns
    -------
    MergedAmplitudes
        Every ASU row of ``reflections``.
    """
    F = values.detach().numpy().astype(np.float64)
    variance = variance_I.detach().numpy().astype(np.float64)
    counts = np.zeros(reflections.n_parameters, dtype=np.int64) if observations is None else observations.numpy()
    if observations is not None:
        F = np.where(counts > 0, F, np.nan)
    rows, signs = reflections.asu_rows_of_parameters
    n = len(reflections.hkl)
    halves = {}
    for sign in (1, -1):
        chosen = signs == sign
        amplitude, var, count = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.int64)
        amplitude[rows[chosen]], var[rows[chosen]], count[rows[chosen]] = F[chosen], variance[chosen], counts[chosen]
        halves[sign] = (amplitude, var, count)
    plus, variance_plus, count_plus = halves[1]
    common = dict(hkl=reflections.hkl, n_shots=n_shots, reflections=reflections,
                  cell_A_deg=tuple(reflections.cell_A_deg), space_group=reflections.space_group)
    if not reflections.anomalous:
        return MergedAmplitudes(F=plus, sigma_F=_sigma_F(plus, variance_plus), F_plus=None, sigma_F_plus=None,
                                F_minus=None, sigma_F_minus=None, n_observations=count_plus, **common)
    minus, variance_minus, count_minus = halves[-1]
    centric = reflections.centric
    minus[centric], variance_minus[centric] = plus[centric], variance_plus[centric]
    pair = np.isfinite(plus) & np.isfinite(minus) & ~centric
    alone = np.where(np.isfinite(plus), 1, -1)  # the mate a row without a pair has, if any
    intensity = np.where(pair, (plus ** 2 + minus ** 2) / 2, np.where(alone > 0, plus, minus) ** 2)
    variance_both = np.where(pair, (variance_plus + variance_minus) / 4,
                             np.where(alone > 0, variance_plus, variance_minus))
    both = np.sqrt(intensity)
    return MergedAmplitudes(F=both, sigma_F=_sigma_F(both, variance_both), F_plus=plus,
                            sigma_F_plus=_sigma_F(plus, variance_plus), F_minus=minus,
                            sigma_F_minus=_sigma_F(minus, variance_minus),
                            n_observations=count_plus + np.where(centric, 0, count_minus), **common)


def _sigma_F(F: np.ndarray, variance_I: np.ndarray) -> np.ndarray:
    """``sqrt(F² + sigma_I) − F`` (:func:`merged_amplitudes`); NaN where F is."""
    with np.errstate(invalid="ignore"):
        return np.sqrt(F ** 2 + np.sqrt(variance_I)) - F


def _largest_change(old: torch.Tensor, new: torch.Tensor, variance_I: torch.Tensor, measured: torch.Tensor) -> float:
    """The largest move of a measured amplitude, in its standard errors."""
    sigma_F = torch.sqrt(variance_I) / (2 * new.clamp(min=1e-12))
    moved = ((new - old).abs() / sigma_F)[measured & torch.isfinite(sigma_F)]
    return float(moved.max()) if moved.numel() else 0.0


def _per_shot(per_shot: Sequence[str]) -> Tuple[str, ...]:
    """``refine_dataset``'s ``per_shot``, checked, in the order of :data:`PER_SHOT`."""
    chosen = (per_shot,) if isinstance(per_shot, str) else tuple(per_shot)
    unknown = sorted(set(chosen) - set(PER_SHOT))
    if unknown or "scale" not in chosen:
        raise ValueError(f"refine_dataset: per_shot must hold 'scale' and any of 'orientation', 'background', got "
                         f"{per_shot!r}" + (f" (unknown: {', '.join(map(repr, unknown))})" if unknown else
                                            " (the data give the amplitudes only up to each shot's scale)"))
    return tuple(name for name in PER_SHOT if name in chosen)


def _fingerprint(shots: Sequence[Shot], reflections, likelihood: Likelihood, per_shot: Tuple[str, ...],
                 shared: Sequence[Parameter], cycles: int) -> str:
    """What a checkpoint must have been written by: the shots' names and configurations, the
    reflections and the settings."""
    parts = [reflections.space_group, repr(reflections.cell_A_deg), repr(reflections.d_min_A),
             repr(reflections.anomalous), type(likelihood).__name__, repr(per_shot),
             repr([p.name for p in shared]), repr(cycles)]
    parts += [f"{shot.name}|{shot.crystal!r}|{shot.beam!r}" for shot in shots]
    import hashlib

    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class AmplitudeStep(NamedTuple):
    """What :func:`_amplitude_step` found."""

    values: torch.Tensor
    """The amplitudes."""
    scales: torch.Tensor
    """Every shot's scale."""
    levels: torch.Tensor
    """Every shot's background level."""
    loss: float
    """The loss over every shot."""
    change: float
    """The largest move of an amplitude, in its standard errors with the orientations held."""
    fisher: torch.Tensor
    """Every intensity's Fisher information."""
    observations: torch.Tensor
    """The shots that recorded each parameter."""


def _amplitude_step(runner, reflections, values: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
                    likelihood: Likelihood) -> AmplitudeStep:
    """The amplitudes, scales and levels at the shots' current orientations."""
    runner.amplitude_terms(reflections)
    intensities, variance, scales, levels, sums = solve_amplitudes(runner.amplitude_sums, values ** 2, scales, levels,
                                                                   likelihood.covariance_factor(None, None, 0))
    new_values = torch.sqrt(intensities)
    return AmplitudeStep(values=new_values, scales=scales, levels=levels, loss=float(sums.loss.sum()),
                         change=_largest_change(values, new_values, variance, sums.pixels > 0), fisher=sums.fisher,
                         observations=runner.observations(len(values)))


def _factors(summaries: Sequence[Dict[str, Any]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every shot's scale and background level, from the shots' summaries."""
    return (torch.stack([summary["values"][3] for summary in summaries]),
            torch.stack([summary["values"][4] for summary in summaries]))


def _with_factors(values: torch.Tensor, scale: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """A shot's parameters with the scale and level of the amplitude step."""
    values = values.clone()
    values[3], values[4] = scale, level
    return values


def _shot_result(summary: Dict[str, Any], scale: torch.Tensor, level: torch.Tensor,
                 stderr: torch.Tensor) -> ShotResult:
    values = dict(zip(SHOT_PARAMETERS, _with_factors(summary["values"], scale, level).tolist()))
    stderr = dict(zip(SHOT_PARAMETERS, stderr.tolist()))
    return ShotResult(name=summary["name"], status=summary["status"], reason=summary["reason"],
                      crystal=summary["crystal"], detector=summary["detector"], values=values, stderr=stderr, converged=summary["converged"],
                      message=summary["message"], pixels=summary["pixels"])
