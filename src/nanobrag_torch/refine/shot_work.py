"""The work of a dataset refinement that belongs to one shot, wherever the shot is held.

A :class:`ShotWork` is everything a shot's part of :func:`~nanobrag_torch.refine.dataset.refine_dataset`
needs, reduced to the pixels near its spots: it is built once where the shot is held (this
process, or a Dask worker), and each iteration sends it only the shared amplitudes. Two steps
alternate:

* :func:`refine_geometry`: the shot's own parameters (orientation, scale, background level) by
  the single-image machinery (:class:`~nanobrag_torch.refine.model.ExperimentModel`,
  :func:`~nanobrag_torch.refine.solver.levenberg_marquardt`) with the amplitudes fixed;
* :func:`amplitude_terms`: for fixed geometry, every compared pixel is ``a · I(h) + c`` in the
  intensity ``I = |F|²`` of the one reflection ``h`` it sees
  (:func:`~nanobrag_torch.refine.reflections.pixel_reflections`), with ``a`` the shot's scale
  times the pixel rendered with unit amplitudes and ``c`` its background: the terms of the
  convex amplitude problem that :mod:`nanobrag_torch.refine.amplitudes` solves.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import BeamConfig, CrystalConfig
from ..models.crystal import Crystal
from ..models.detector import Detector
from ..simulator import Simulator
from ..structure_factors import StructureFactors
from .likelihoods import Likelihood
from .merging import MIN_PARTIALITY
from .model import ExperimentModel
from .parameters import BACKGROUND_SCALE, SCALE, Parameter, parse_parameters
from .pixels import brightest_pixels, informative_pixels
from .reflections import pixel_reflections
from .solver import PixelObjective, levenberg_marquardt
from .spot_fit import fit_spot_positions
from .spots import Spots, find_spots

ORIENTATION_PARAMETERS = ("crystal.misset_deg[0]", "crystal.misset_deg[1]", "crystal.misset_deg[2]")
"""A shot's orientation parameters: small rotations about lab x, y and z (degrees) of its
indexed orientation."""

SHOT_PARAMETERS = ORIENTATION_PARAMETERS + (SCALE, BACKGROUND_SCALE)
"""Every parameter of a shot, in the order of :attr:`ShotWork.values`."""

PER_SHOT = ("orientation", "scale", "background")
"""What may be refined per shot, and the default: the orientation (:data:`ORIENTATION_PARAMETERS`),
the overall scale, and the level of the water-scattering background. The scale is always
refined (the data give the amplitudes only up to each shot's scale); an orientation not refined
stays the indexed one, and without ``"background"`` a shot has no background term."""

SPOT_FLUX_FRACTION = 0.9
"""A shot compares the brightest pixels of its predicted spots that hold this fraction of their
photons (rendered with every amplitude 1), dilated by
:data:`~nanobrag_torch.refine.pixels.MARGIN_PX`: the far tails of a still's spots hold little
information and many pixels."""

MIN_SPOTS = 3
"""A shot with fewer observed spots is not refined (status ``"too few spots"``)."""

MAX_SATURATED_SPOT_FRACTION = 0.5
"""A shot is not refined when more than this fraction of its observed spots hold a saturated
pixel (status ``"saturated"``): their peaks are lost, and what is left of them says little."""

MIN_INDEXED_FRACTION = 0.25
"""A shot is refined only when at least this fraction of its observed spots lie on the pixels
its starting orientation predicts (else status ``"not indexed"``)."""

FIRST_GEOMETRY_ITERATIONS = 3
"""Levenberg–Marquardt iterations of a shot's first geometry step at most (from the indexed
orientation); the later cycles take one, from where the last one ended: the step is repeated
every cycle, so it need not converge within one."""

WATER_REFERENCE_UM = 100.0
"""Water thickness of the background template of a shot whose beam has no water: its level is a
refined parameter, the template only gives its shape."""


@dataclass
class ShotWork:
    """One shot of a dataset refinement, reduced to the pixels near its spots.

    Attributes
    ----------
    index : int
        Position of the shot in the dataset.
    name : str
        The shot's name.
    configs : dict
        ``{"crystal", "detector", "beam"}``: the starting crystal with its orientation as
        reciprocal vectors (misset 0, so that the refined misset is a small rotation), the
        detector, and the beam without water (the background is its own term).
    pixels : tensor (n,) of int64
        Flat indices of the compared pixels.
    observed : tensor (n,) of float64
        Their counts.
    background : tensor (n,) of float64
        The background template (water scattering of the shot's beam) at them.
    total_pixels : int
        Pixels of the detector.
    values : tensor (5,) of float64
        :data:`SHOT_PARAMETERS`: misset about x, y, z (degrees), scale, background scale.
    stderr : tensor (5,) of float64
        Their standard errors (NaN before the first geometry step).
    spots : Spots
        The observed spots (the first geometry step fits the orientation to their positions).
    orientation_refined : bool
        Whether the geometry step refines the orientation (else it stays the indexed one).
    converged : bool
        Whether the last geometry step met its convergence test.
    message : str
        How the last geometry step ended.
    status : str
        ``"ok"``, or why the shot is left out of the shared parameters.
    reason : str
        The details behind a status other than ``"ok"``.
    """

    index: int
    name: str
    configs: Dict[str, object]
    pixels: torch.Tensor
    observed: torch.Tensor
    background: torch.Tensor
    total_pixels: int
    values: torch.Tensor
    stderr: torch.Tensor
    spots: Spots
    orientation_refined: bool = True
    converged: bool = False
    message: str = ""
    status: str = "ok"
    reason: str = ""

    def refined_crystal(self) -> CrystalConfig:
        """The crystal at the current values, its misset folded into the reciprocal vectors.

        Returns
        -------
        CrystalConfig
        """
        crystal = dataclasses.replace(self.configs["crystal"], misset_deg=tuple(float(v) for v in self.values[:3]))
        return indexed_orientation(crystal)


def indexed_orientation(crystal: CrystalConfig) -> CrystalConfig:
    """The same crystal with its orientation given as reciprocal vectors and no misset.

    Parameters
    ----------
    crystal : CrystalConfig
        Any orientation: MOSFLM vectors, a cell with a misset, or both.

    Returns
    -------
    CrystalConfig
        ``mosflm_a_star``, ``mosflm_b_star``, ``mosflm_c_star`` the lab-frame reciprocal
        vectors (Å⁻¹) of ``crystal`` after its misset; cell lengths and angles unset (the
        vectors hold them); ``misset_deg`` 0.
    """
    a_star, b_star, c_star = Crystal(crystal, dtype=torch.float64).reciprocal_vectors_per_A()
    return dataclasses.replace(crystal, mosflm_a_star=tuple(a_star.tolist()), mosflm_b_star=tuple(b_star.tolist()),
                               mosflm_c_star=tuple(c_star.tolist()), misset_deg=(0.0, 0.0, 0.0), cell_a=None,
                               cell_b=None, cell_c=None, cell_alpha=None, cell_beta=None, cell_gamma=None)


def prepare_shot(index: int, name: str, observed: torch.Tensor, used: torch.Tensor, saturated: torch.Tensor,
                 crystal: CrystalConfig, detector, beam: BeamConfig, per_shot: Tuple[str, ...] = PER_SHOT
                 ) -> ShotWork:
    """Choose a shot's pixels and build its work.

    The pixels are those near the spots its starting orientation predicts (rendered with every
    amplitude 1, so that every reflection in diffraction counts) or near its observed spots
    (:func:`~nanobrag_torch.refine.pixels.informative_pixels`); saturated pixels are found
    in spots but not compared. A shot with fewer than :data:`MIN_SPOTS` observed spots, whose
    spots are mostly saturated (:data:`MAX_SATURATED_SPOT_FRACTION`), or whose observed spots
    mostly miss the predicted ones (:data:`MIN_INDEXED_FRACTION`), gets a status other than
    ``"ok"``.

    Parameters
    ----------
    index : int
        Position of the shot in the dataset.
    name : str
        The shot's name.
    observed : tensor (n_panels, spixels, fpixels) of float64
        Its photon counts, checked (finite, non-negative, of the detector's shape).
    used : tensor (n_panels, spixels, fpixels) of bool
        The pixels that may be compared.
    saturated : tensor (n_panels, spixels, fpixels) of bool
        The pixels at or above the detector's saturation (not in ``used``).
    crystal, detector, beam
        The shot's configurations (the crystal at its indexed orientation).
    per_shot : tuple of str
        What is refined (:data:`PER_SHOT`); without ``"background"`` the background
        template is 0.

    Returns
    -------
    ShotWork
    """
    crystal = indexed_orientation(crystal)
    dry_beam = dataclasses.replace(beam, water_size_um=0.0)
    unit = _unit_amplitude_image(crystal, detector, dry_beam)
    template = water_template(detector, beam) if "background" in per_shot else torch.zeros_like(unit)
    predicted = brightest_pixels(torch.where(used, unit, torch.zeros_like(unit)), SPOT_FLUX_FRACTION)
    level = _background_level(observed, template, used & ~predicted)
    try:
        spots, no_spots = find_spots(observed, template * level, used | saturated), ""
    except ValueError as error:  # a blank or very faint image: no spot at all
        empty = torch.zeros(0, dtype=torch.float64)
        spots = Spots(panel=torch.zeros(0, dtype=torch.int64), slow_px=empty, fast_px=empty, photons=empty)
        no_spots = str(error)
    pixels = informative_pixels([predicted], spots, used)
    values = torch.tensor([0.0, 0.0, 0.0, 1.0, level], dtype=torch.float64)
    work = ShotWork(index=index, name=name, configs={"crystal": crystal, "detector": detector, "beam": dry_beam},
                    pixels=pixels, observed=observed.reshape(-1)[pixels].clone(),
                    background=template.reshape(-1)[pixels].clone(), total_pixels=observed.numel(),
                    values=values, stderr=torch.full((5,), math.nan, dtype=torch.float64), spots=spots,
                    orientation_refined="orientation" in per_shot)
    if len(spots) < MIN_SPOTS:
        work.status, work.reason = "too few spots", no_spots or (f"{len(spots)} spot(s) found, at least "
                                                                 f"{MIN_SPOTS} are needed")
        return work
    flat = _spot_flat(spots, observed.shape)
    near_saturated = torch.nn.functional.max_pool2d(saturated.to(torch.float64)[:, None], 3, stride=1, padding=1)
    clipped = int(near_saturated.reshape(-1)[flat].bool().sum())
    if clipped > MAX_SATURATED_SPOT_FRACTION * len(spots):
        work.status, work.reason = "saturated", (f"{clipped} of the {len(spots)} observed spots hold a pixel at or "
                                                 f"above the saturation (at most "
                                                 f"{MAX_SATURATED_SPOT_FRACTION:.0%} may)")
        return work
    near = informative_pixels([predicted], _no_spots(spots), used)
    found = observed.new_zeros(observed.numel(), dtype=torch.bool)
    found[near] = True
    fraction = float(found[flat].float().mean())
    if fraction < MIN_INDEXED_FRACTION:
        work.status, work.reason = "not indexed", (f"{fraction:.0%} of the {len(spots)} observed spots lie near "
                                                  f"spots the starting orientation predicts (at least "
                                                  f"{MIN_INDEXED_FRACTION:.0%} are needed)")
    return work


def water_template(detector, beam: BeamConfig) -> torch.Tensor:
    """The shape of a shot's background: the water scattering of its beam with no crystal.

    Parameters
    ----------
    detector : DetectorConfig
        The detector.
    beam : BeamConfig
        The beam; its water thickness, or :data:`WATER_REFERENCE_UM` when it has none.

    Returns
    -------
    tensor (n_panels, spixels, fpixels) of float64
        Expected photons per pixel.
    """
    water_um = beam.water_size_um if beam.water_size_um > 0 else WATER_REFERENCE_UM
    wet = dataclasses.replace(beam, water_size_um=water_um)
    empty = CrystalConfig(N_cells=(1, 1, 1), default_F=0.0)
    image = Simulator(Crystal(empty), Detector(detector), wet).run()
    return Detector(detector).layout.as_panels(image.to(torch.float64))


def _unit_amplitude_image(crystal: CrystalConfig, detector, beam: BeamConfig) -> torch.Tensor:
    """The shot rendered with every amplitude 1, (n_panels, spixels, fpixels) float64."""
    unit = dataclasses.replace(crystal, default_F=1.0)
    image = Simulator(Crystal(unit, dtype=torch.float32), Detector(detector, dtype=torch.float32), beam).run()
    return Detector(detector).layout.as_panels(image.to(torch.float64))


def _background_level(observed: torch.Tensor, template: torch.Tensor, used: torch.Tensor) -> float:
    """A starting background level: the mean count over the mean template of the pixels away
    from the predicted spots."""
    if not bool(used.any()):
        return 0.0
    shape = float(template[used].mean())
    return float(observed[used].mean()) / shape if shape > 0 else 0.0


def _no_spots(spots):
    return dataclasses.replace(spots, slow_px=spots.slow_px[:0], fast_px=spots.fast_px[:0], panel=spots.panel[:0])


def _spot_flat(spots, shape) -> torch.Tensor:
    rows = spots.slow_px.round().long().clamp(0, shape[1] - 1)
    cols = spots.fast_px.round().long().clamp(0, shape[2] - 1)
    return (spots.panel * shape[1] + rows) * shape[2] + cols


def refined_positions(work: ShotWork) -> list:
    """Positions in :data:`SHOT_PARAMETERS` of what a shot's geometry step refines: the
    orientation unless held, the scale, and the background level where there is a background.

    Parameters
    ----------
    work : ShotWork
        The shot.

    Returns
    -------
    list of int
    """
    refined = [0, 1, 2] if work.orientation_refined else []
    return refined + [3] + ([4] if bool(work.background.sum() > 0) else [])


def _background_image(work: ShotWork) -> torch.Tensor:
    """The shot's background template on the whole detector (0 away from its pixels), flat."""
    background = torch.zeros(work.total_pixels, dtype=torch.float64)
    background[work.pixels] = work.background
    return background


def shot_model(work: ShotWork, table: StructureFactors, dtype: torch.dtype, refined: Sequence[int],
               extra: Sequence[Parameter] = ()) -> Tuple[ExperimentModel, list]:
    """The shot's model in its parameters at ``refined`` (positions in :data:`SHOT_PARAMETERS`)
    and then ``extra``; the others stay at the indexed orientation and a background of 0.

    Parameters
    ----------
    work : ShotWork
        The shot.
    table : StructureFactors
        The amplitudes.
    dtype : torch.dtype
        Of the simulation.
    refined : sequence of int
        The shot's own parameters in the model.
    extra : sequence of Parameter
        Parameters after them (the shared geometry).

    Returns
    -------
    model : ExperimentModel
    parameters : list of Parameter
        The model's parameters: the shot's, then ``extra``.
    """
    names = [SHOT_PARAMETERS[i] for i in refined]
    parameters, _ = parse_parameters({name: 0.0 if name.startswith("crystal") else 1.0 for name in names},
                                     work.configs, None)
    parameters = parameters + list(extra)
    return ExperimentModel(work.configs, table, parameters, _background_image(work), dtype,
                           torch.device("cpu")), parameters


def refine_geometry(work: ShotWork, table: StructureFactors, likelihood: Likelihood, dtype: torch.dtype,
                    first: bool) -> ShotWork:
    """Refine a shot's orientation, scale and background level with the amplitudes fixed.

    An orientation held by ``per_shot`` stays the indexed one, and a shot without background
    has no level; their standard errors are NaN.

    Parameters
    ----------
    work : ShotWork
        The shot (a status other than ``"ok"`` returns it unchanged).
    table : StructureFactors
        The current amplitudes.
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.
    dtype : torch.dtype
        Of the simulation.
    first : bool
        The first step: the orientation is first fitted to the observed spots' positions
        (:func:`~nanobrag_torch.refine.spot_fit.fit_spot_positions`: a wider reach than the
        pixels' likelihood, whose spots appear and vanish as the crystal turns through a
        fraction of a degree; kept only where it lowers the pixels' loss, for on a small
        detector with few, low-resolution spots the match of observed to predicted spots can
        be wrong), then :data:`FIRST_GEOMETRY_ITERATIONS` iterations; later steps take one.

    Returns
    -------
    ShotWork
        A new work with the refined values, their standard errors and how the step ended.
    """
    if work.status != "ok":
        return work
    refined = refined_positions(work)
    model, parameters = shot_model(work, table, dtype, refined)
    observed = torch.zeros(work.total_pixels, dtype=torch.float64)
    observed[work.pixels] = work.observed
    objective = PixelObjective(model, likelihood, observed, work.pixels)
    lower = torch.tensor([p.lower for p in parameters], dtype=torch.float64)
    upper = torch.tensor([p.upper for p in parameters], dtype=torch.float64)
    start = work.values[refined]
    if first and work.orientation_refined:
        fitted = fit_spot_positions(model, parameters, start, work.spots, lower, upper)
        if objective.loss(fitted) < objective.loss(start):  # else the spots were matched wrongly
            start = fitted
    local = levenberg_marquardt(objective, start, lower, upper, on_iteration=lambda values, loss: None,
                                max_iterations=FIRST_GEOMETRY_ITERATIONS if first else 1)
    if not math.isfinite(local.loss):
        return dataclasses.replace(work, status="failed", reason=local.message, message=local.message)
    covariance = objective.covariance(local.matrix, local.expected, len(parameters))
    values = work.values.clone()
    values[refined] = local.x
    stderr = torch.full_like(values, math.nan)
    stderr[refined] = torch.sqrt(torch.diag(covariance).clamp(min=0))
    return dataclasses.replace(work, values=values, stderr=stderr, converged=local.converged, message=local.message)


@dataclass
class AmplitudeTerms:
    """Pixels of some shots as terms ``s · u · I[parameter] + b · w`` of the amplitude problem.

    Each shot's pixels come together, ordered by parameter.

    Attributes
    ----------
    parameter : tensor (m,) of int64
        The amplitude parameter (:class:`~nanobrag_torch.symmetry.ReflectionSet`) each pixel sees.
    shot : tensor (m,) of int64
        The shot (its position in the dataset) each pixel belongs to; ``s`` and ``b`` are that
        shot's scale and background level.
    unit : tensor (m,) of float64
        ``u``: expected photons per unit intensity at scale 1 (the pixel rendered with
        amplitude 1).
    background : tensor (m,) of float64
        ``w``: the background template.
    observed : tensor (m,) of float64
        Counts.
    recorded : tensor (m,) of bool
        Whether the pixel's reflection counts as observed on its shot: the peak of its unit
        image is at least :data:`~nanobrag_torch.refine.merging.MIN_PARTIALITY` of the shot's
        brightest reflection's (the rule of the conventional integration).
    """

    parameter: torch.Tensor
    shot: torch.Tensor
    unit: torch.Tensor
    background: torch.Tensor
    observed: torch.Tensor
    recorded: torch.Tensor

    @classmethod
    def joined(cls, parts: Sequence[Optional["AmplitudeTerms"]]) -> Optional["AmplitudeTerms"]:
        """The terms of several shots as one (None when none has any).

        Parameters
        ----------
        parts : sequence of AmplitudeTerms or None
            The shots' terms.

        Returns
        -------
        AmplitudeTerms or None
        """
        parts = [part for part in parts if part is not None]
        if not parts:
            return None
        return cls(*(torch.cat([getattr(part, f.name) for part in parts]) for f in dataclasses.fields(cls)))


def unit_pixels(work: ShotWork, reflections, dtype: torch.dtype):
    """The shot's pixels that see one reflection of the refined set, at its current geometry,
    rendered with every amplitude 1.

    Pixels whose evaluations see different reflections, or a reflection outside the set, are
    left out: their expected counts are not linear in one intensity.

    Parameters
    ----------
    work : ShotWork
        The shot.
    reflections : ReflectionSet
        The refined reflections.
    dtype : torch.dtype
        Of the simulation.

    Returns
    -------
    keep : tensor (m,) of int64
        The pixels' positions in ``work.pixels``.
    hkl : tensor (m, 3) of int64
        The P1 index of the reflection each sees.
    parameter : tensor (m,) of int64
        Its amplitude parameter.
    unit : tensor (m,) of float64
        The pixel's expected photons at amplitude 1 and scale 1.
    layout : PixelLayout
        The detector's pixel layout (:attr:`~nanobrag_torch.models.detector.Detector.layout`).
    """
    crystal = dataclasses.replace(work.refined_crystal(), default_F=1.0)
    simulator = Simulator(Crystal(crystal, dtype=dtype), Detector(work.configs["detector"], dtype=dtype),
                          work.configs["beam"])
    prepared = simulator.prepare()
    with torch.no_grad():
        unit = simulator.run(pixels=work.pixels, prepared=prepared).to(torch.float64)
    seen = pixel_reflections(prepared, work.pixels)
    parameter = torch.from_numpy(np.asarray(reflections.parameter_of(seen.hkl.numpy()), dtype=np.int64))
    keep = torch.nonzero(seen.single & (parameter >= 0) & (unit > 0)).reshape(-1)
    return keep, seen.hkl[keep], parameter[keep], unit[keep], prepared.layout


def _recorded(group: torch.Tensor, unit: torch.Tensor, groups: int) -> torch.Tensor:
    """Per pixel, whether its reflection counts as observed on the shot: the peak of its unit
    image is at least :data:`~nanobrag_torch.refine.merging.MIN_PARTIALITY` of the shot's
    brightest reflection's (the rule of the conventional integration)."""
    if group.numel() == 0:
        return unit > 0
    peaks = torch.zeros(groups, dtype=torch.float64).scatter_reduce(0, group, unit, "amax")
    return peaks[group] >= MIN_PARTIALITY * float(peaks.max())


def amplitude_terms(work: ShotWork, reflections, dtype: torch.dtype) -> Optional[AmplitudeTerms]:
    """The shot's pixels that see one reflection, as terms of the amplitude problem.

    Pixels whose evaluations see different reflections, or a reflection outside the refined
    set, are left out (their expected counts are not linear in one intensity).

    Parameters
    ----------
    work : ShotWork
        The shot at its current geometry.
    reflections : ReflectionSet
        The refined reflections (``parameter_of`` maps P1 indices to parameters).
    dtype : torch.dtype
        Of the simulation.

    Returns
    -------
    AmplitudeTerms or None
        None for a shot whose status is not ``"ok"``.
    """
    if work.status != "ok":
        return None
    keep, _, parameter, unit, _ = unit_pixels(work, reflections, dtype)
    order = torch.argsort(parameter, stable=True)  # the pixels of a reflection together
    keep, parameter, unit = keep[order], parameter[order], unit[order]
    return AmplitudeTerms(parameter=parameter, shot=torch.full((parameter.numel(),), work.index, dtype=torch.int64),
                          unit=unit, background=work.background[keep], observed=work.observed[keep],
                          recorded=_recorded(parameter, unit, reflections.n_parameters))


@dataclass
class SpotObservations:
    """A shot's recorded reflections, each summed over its compared pixels at the shot's
    refined geometry (the rows of an unmerged MTZ file).

    Attributes
    ----------
    shot : int
        The shot's position in the dataset.
    hkl : tensor (k, 3) of int64
        The reflections' indices as observed (P1).
    parameter : tensor (k,) of int64
        Their parameters of the refined set.
    counts : tensor (k,) of float64
        Photons summed over the reflection's pixels.
    unit : tensor (k,) of float64
        The same pixels' expected photons per unit intensity at scale 1.
    background : tensor (k,) of float64
        Their background template summed.
    panel : tensor (k,) of int64
        The panel of the reflection's pixels (the first pixel's).
    fast_px, slow_px : tensor (k,) of float64
        The centroid of the unit image over the pixels, in pixels of the panel (0 is the
        centre of its first pixel).
    """

    shot: int
    hkl: torch.Tensor
    parameter: torch.Tensor
    counts: torch.Tensor
    unit: torch.Tensor
    background: torch.Tensor
    panel: torch.Tensor
    fast_px: torch.Tensor
    slow_px: torch.Tensor


def spot_observations(work: ShotWork, reflections, dtype: torch.dtype) -> Optional[SpotObservations]:
    """The shot's recorded reflections summed over their compared pixels.

    The same pixels as :func:`amplitude_terms`, grouped by P1 index (Friedel mates and
    symmetry mates apart), recorded by the same rule.

    Parameters
    ----------
    work : ShotWork
        The shot at its refined geometry.
    reflections : ReflectionSet
        The refined reflections.
    dtype : torch.dtype
        Of the simulation.

    Returns
    -------
    SpotObservations or None
        None for a shot whose status is not ``"ok"``.
    """
    if work.status != "ok":
        return None
    keep, hkl, parameter, unit, layout = unit_pixels(work, reflections, dtype)
    observed_hkl, group = torch.unique(hkl, dim=0, return_inverse=True)
    groups = observed_hkl.shape[0]
    panel, slow, fast = layout.coordinates(work.pixels[keep])

    def summed(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(groups, dtype=torch.float64).scatter_add_(0, group, values.to(torch.float64))

    recorded = torch.zeros(groups, dtype=torch.bool).scatter_(0, group, _recorded(group, unit, groups))
    unit_sum = summed(unit)
    first_panel = torch.zeros(groups, dtype=torch.int64).scatter_(0, group, panel)
    group_parameter = torch.zeros(groups, dtype=torch.int64).scatter_(0, group, parameter)
    return SpotObservations(shot=work.index, hkl=observed_hkl[recorded], parameter=group_parameter[recorded],
                            counts=summed(work.observed[keep])[recorded],
                            unit=unit_sum[recorded], background=summed(work.background[keep])[recorded],
                            panel=first_panel[recorded], fast_px=(summed(unit * fast) / unit_sum)[recorded],
                            slow_px=(summed(unit * slow) / unit_sum)[recorded])
