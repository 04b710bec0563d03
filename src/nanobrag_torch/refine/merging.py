"""Conventional processing of still shots: summation integration and merging of symmetry equivalents.

The reference that a joint refinement of many shots (``nanobrag_torch.refine.dataset``) is
measured against. Each shot's spots are predicted by the model at the shot's given
orientation: the engine renders the shot with every amplitude 1 (the *unit image*: the
partiality, Lorentz, polarization and solid-angle factors and the fluence of each pixel), and
:func:`~nanobrag_torch.refine.reflections.pixel_reflections` names the one reflection of every
pixel (a pixel whose sub-pixels or mosaic domains see different reflections belongs to none). The pixels of a reflection
where the unit image exceeds :data:`SPOT_FRACTION` of the reflection's peak are its spot; the
median of the other pixels in a box around it is its background. A shot's observation of
``|F|²`` is then ``Σ (counts − background) / Σ unit image`` over the spot, divided by the shot's
scale, with its counting variance; the observations of symmetry equivalents (the Friedel mates
separately when anomalous) are averaged with inverse-variance weights. Without the partiality
correction (``partiality=False``) it is the field's plain processing: summation intensities over
the shot's scale, merged by their mean.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..symmetry import ReflectionSet

SPOT_FRACTION = 0.05
"""A reflection's spot: its pixels where the unit image is above this fraction of its peak."""

MIN_PARTIALITY = 0.02
"""A reflection is observed on a shot when the peak of its unit image is at least this fraction
of the brightest reflection's on the shot (weaker ones are far from the diffraction condition)."""

BACKGROUND_MARGIN_PX = 4
"""The background box extends the spot's bounding box by this many pixels on every side."""


@dataclass(frozen=True)
class MergedAmplitudes:
    """Amplitudes merged from many shots, per reflection of the asymmetric unit.

    Attributes
    ----------
    hkl : ndarray of int64 (n, 3)
        The ASU reflections (``reflections.hkl``).
    F, sigma_F : ndarray (n,)
        Amplitudes (electrons, on the scale of the model's unit image) and their standard
        errors, all equivalents and Friedel mates merged; NaN where not measured.
    F_plus, sigma_F_plus, F_minus, sigma_F_minus : ndarray (n,) or None
        With ``anomalous=True``: the same of ``hkl`` and of ``−hkl`` separately (a centric
        reflection's two are its F); None otherwise.
    n_observations : ndarray of int64 (n,)
        Observations (spots of shots) merged into each F.
    n_shots : int
        Shots integrated.
    reflections : ReflectionSet
        The set (anomalous when the merging was) that lays out the reflections.
    cell_A_deg : tuple of 6 floats
        The cell of the reflections (Å, degrees).
    space_group : str
        gemmi's Hermann–Mauguin symbol of the group merged in.
    """

    hkl: np.ndarray
    F: np.ndarray
    sigma_F: np.ndarray
    F_plus: Optional[np.ndarray]
    sigma_F_plus: Optional[np.ndarray]
    F_minus: Optional[np.ndarray]
    sigma_F_minus: Optional[np.ndarray]
    n_observations: np.ndarray
    n_shots: int
    reflections: ReflectionSet
    cell_A_deg: Tuple[float, ...]
    space_group: str

    def write_mtz(self, path: Union[str, Path]) -> None:
        """Write the measured reflections as MTZ: H K L F SIGF, and F(+) SIGF(+) F(-) SIGF(-)
        when anomalous (:func:`nanobrag_torch.io.mtz.write_mtz_amplitudes`; NaN is MTZ's missing
        value).

        Parameters
        ----------
        path : str or path
            The file; written atomically.
        """
        from ..io.mtz import write_mtz_amplitudes

        measured = np.isfinite(self.F)
        halves = {name: None if getattr(self, name) is None else getattr(self, name)[measured]
                  for name in ("F_plus", "sigma_F_plus", "F_minus", "sigma_F_minus")}
        write_mtz_amplitudes(path, self.hkl[measured], self.F[measured], self.sigma_F[measured],
                             cell_A_deg=self.cell_A_deg, space_group=self.space_group, **halves)


@dataclass(frozen=True)
class IntegratedSpots:
    """One shot's observations of ``|F|²`` (:func:`integrate_shot`): per integrated spot, the
    P1 index, the intensity, its variance, and the spot's sum of the unit image (the model's
    partiality times the pixels' factors).

    Attributes
    ----------
    hkl : ndarray of int64 (k, 3)
        The spots' reflections as observed (P1).
    intensity, variance : ndarray (k,)
        ``Σ (counts − background) / Σ unit image`` over the shot's scale, and its variance.
    unit_sum : ndarray (k,)
        ``Σ unit image`` over the spot.
    """

    hkl: np.ndarray
    intensity: np.ndarray
    variance: np.ndarray
    unit_sum: np.ndarray

    @classmethod
    def joined(cls, parts: Sequence["IntegratedSpots"]) -> "IntegratedSpots":
        """The spots of several shots, one after another.

        Parameters
        ----------
        parts : sequence of IntegratedSpots
            The shots' spots.

        Returns
        -------
        IntegratedSpots
        """
        return cls(*(np.concatenate([getattr(part, f.name) for part in parts]) for f in dataclasses.fields(cls)))

    def without_partiality(self) -> "IntegratedSpots":
        """The same spots as plain summation intensities, ``Σ (counts − background)`` over the
        shot's scale, put on the model's scale by one factor for all (the mean unit sum).

        Returns
        -------
        IntegratedSpots
        """
        factor = self.unit_sum / self.unit_sum.mean() if len(self.unit_sum) else self.unit_sum
        return IntegratedSpots(self.hkl, self.intensity * factor, self.variance * factor ** 2, self.unit_sum)


def integrate_and_merge(shots: Sequence[Any], space_group: str, d_min_A: float, *, anomalous: bool = False,
                        scales: Optional[Sequence[float]] = None,
                        cell_A_deg: Optional[Sequence[float]] = None, partiality: bool = True) -> MergedAmplitudes:
    """Summation integration of every predicted spot of every shot, and merging of equivalents.

    With ``partiality=True`` (the default, and the start of
    :func:`~nanobrag_torch.refine.dataset.refine_dataset`) each spot's summed counts are
    divided by the model's prediction of the spot at unit intensity (its partiality and the
    pixels' factors) and the equivalents are averaged with inverse-variance weights: a
    model-based method, as good as the given orientations. With ``partiality=False`` it is the
    field's plain conventional processing of stills (Monte Carlo merging): the summation
    intensities over the shot's scale, one overall factor for all, and a plain mean of the
    equivalents, which averages the partialities out over many shots.

    Parameters
    ----------
    shots : sequence of Shot
        Each with ``observed`` (photon counts, (slow, fast) or (panels, slow, fast)), ``crystal``
        (CrystalConfig: the orientation the spots are predicted from), ``detector``
        (DetectorConfig or MultiPanelDetectorConfig) and ``beam`` (BeamConfig); ``mask`` (bool,
        of the image's shape, True where a pixel is used) when the shot has one.
        A spot that touches a masked, untrusted or saturated pixel is not integrated.
    space_group : str
        Hermann–Mauguin symbol.
    d_min_A : float
        Resolution limit in Å.
    anomalous : bool
        Also merge the Friedel mates of acentric reflections separately.
    scales : sequence of floats, optional
        Each shot's scale (its fluence over its beam's); default 1.
    cell_A_deg : sequence of 6 floats, optional
        The cell of the reflection set. Default: the first shot's crystal's (from its MOSFLM
        vectors or cell).
    partiality : bool
        Correct each spot by the model's partiality and merge with inverse-variance weights
        (True), or merge plain summation intensities by their mean (False).

    Returns
    -------
    MergedAmplitudes

    Raises
    ------
    ValueError
        No shots, ``scales`` of another length or not positive, or an observed image whose
        shape is not the detector's.
    """
    if len(shots) == 0:
        raise ValueError("integrate_and_merge: no shots")
    scales = np.ones(len(shots)) if scales is None else np.asarray(scales, dtype=np.float64)
    if scales.shape != (len(shots),) or not (scales > 0).all():
        raise ValueError(f"integrate_and_merge: scales must be {len(shots)} numbers > 0 (one per shot), got "
                         f"shape {scales.shape}")
    from .dataset import cell_of, shot_image  # the one reading and checking of a shot's image

    if cell_A_deg is None:
        cell_A_deg = cell_of(shots[0].crystal)
    merged_set = ReflectionSet(space_group, cell_A_deg, d_min_A, anomalous=False)
    spots = [integrate_shot(shot, shot_image(shot, index), merged_set, scale)
             for index, (shot, scale) in enumerate(zip(shots, scales))]
    return merge_integrated(spots, merged_set, anomalous=anomalous, partiality=partiality)


def merge_integrated(spots: Sequence[IntegratedSpots], reflections: ReflectionSet, *, anomalous: bool = False,
                     partiality: bool = True) -> MergedAmplitudes:
    """Merge every shot's integrated spots (:func:`integrate_shot`) into amplitudes of the
    asymmetric unit: the second half of :func:`integrate_and_merge`.

    Parameters
    ----------
    spots : sequence of IntegratedSpots
        One per shot.
    reflections : ReflectionSet
        The set they were integrated in (not anomalous).
    anomalous : bool
        Also merge the Friedel mates of acentric reflections separately.
    partiality : bool
        Merge the partiality-corrected intensities with inverse-variance weights (True), or
        the plain summation intensities by their mean (False).

    Returns
    -------
    MergedAmplitudes
    """
    everything = IntegratedSpots.joined(spots)
    if not partiality:
        everything = everything.without_partiality()
    F, sigma_F, counts = _merge(everything, reflections, weighted=partiality)
    anomalous_set, halves = reflections, (None, None, None, None)
    if anomalous:
        anomalous_set = ReflectionSet(reflections.space_group, reflections.cell_A_deg, reflections.d_min_A,
                                      anomalous=True)
        values, sigmas, _ = _merge(everything, anomalous_set, weighted=partiality)
        n = len(reflections.hkl)
        minus = anomalous_set.parameter_of(-reflections.hkl)  # a centric reflection's F(−) is its F(+)
        halves = (values[:n], sigmas[:n], values[minus], sigmas[minus])
    return MergedAmplitudes(hkl=reflections.hkl, F=F, sigma_F=sigma_F, F_plus=halves[0], sigma_F_plus=halves[1],
                            F_minus=halves[2], sigma_F_minus=halves[3], n_observations=counts, n_shots=len(spots),
                            reflections=anomalous_set, cell_A_deg=tuple(reflections.cell_A_deg),
                            space_group=reflections.space_group)


def compare_amplitudes(F: Union[np.ndarray, torch.Tensor], F_true: Union[np.ndarray, torch.Tensor]) -> Tuple[float, float]:
    """Correlation and R factor of amplitudes against the truth, over the reflections both have.

    Parameters
    ----------
    F : array-like (n,)
        Amplitudes (NaN where not measured), on any scale.
    F_true : array-like (n,)
        The true amplitudes of the same reflections.

    Returns
    -------
    cc : float
        Pearson correlation coefficient.
    r : float
        ``Σ |k F − F_true| / Σ F_true`` with ``k = Σ F F_true / Σ F²`` (the least-squares scale
        of F onto the truth).

    Raises
    ------
    ValueError
        The two differ in length, or fewer than two reflections have both.
    """
    measured, truth = (np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
                       for v in (F, F_true))
    if measured.shape != truth.shape:
        raise ValueError(f"compare_amplitudes: F has shape {measured.shape} but F_true {truth.shape}")
    both = np.isfinite(measured) & np.isfinite(truth)
    if both.sum() < 2:
        raise ValueError(f"compare_amplitudes: {int(both.sum())} reflections have both amplitudes, need 2")
    measured, truth = measured[both], truth[both]
    cc = float(np.corrcoef(measured, truth)[0, 1])
    k = float(measured @ truth / (measured @ measured))
    return cc, float(np.abs(k * measured - truth).sum() / truth.sum())


def _pixel_reflections(shot, reflections: ReflectionSet) -> Tuple[np.ndarray, np.ndarray]:
    """The unit image of a shot (every amplitude 1, no water), and the row of ``p1_hkl`` of every
    pixel (−1: a systematic absence, beyond the set, or sub-pixels and domains of different
    reflections), by :func:`~nanobrag_torch.refine.reflections.pixel_reflections`."""
    from ..models.crystal import Crystal
    from ..models.detector import Detector
    from ..simulator import Simulator
    from .reflections import pixel_reflections

    crystal = dataclasses.replace(shot.crystal, interpolate=False, default_F=1.0)
    beam = dataclasses.replace(shot.beam, water_size_um=0.0)
    simulator = Simulator(Crystal(crystal), Detector(shot.detector), beam)
    prepared = simulator.prepare()
    with torch.no_grad():
        unit = simulator.run(prepared=prepared).numpy()
    seen = pixel_reflections(prepared, torch.arange(unit.size))
    hkl = seen.hkl.numpy()
    row = np.where(seen.single.numpy(), reflections.p1_row_of(hkl), -1)
    row = np.where(reflections.parameter_of(hkl) >= 0, row, -1)
    return unit, np.where(unit.reshape(-1) > 0, row, -1).reshape(unit.shape)


def integrate_shot(shot, image, reflections: ReflectionSet, scale: float = 1.0) -> IntegratedSpots:
    """The observations of ``|F|²`` of one shot (see the module's description); on a detector
    of several panels, the part of a reflection's spot on each panel is a spot of its own.

    Parameters
    ----------
    shot : Shot
        Its ``crystal`` (the orientation the spots are predicted from), ``detector``, ``beam``
        and ``mask``.
    image : ShotImage
        Its image, read and checked (:func:`~nanobrag_torch.refine.dataset.shot_image`).
    reflections : ReflectionSet
        The reflections integrated (not anomalous).
    scale : float
        The shot's scale.

    Returns
    -------
    IntegratedSpots
    """
    observed = image.counts.numpy()
    shape = observed.shape  # (panels, slow, fast)
    used = ~image.untrusted.numpy()
    mask = getattr(shot, "mask", None)  # a Shot, or any record with its fields (datasets.SerialShot)
    if mask is not None:
        used &= np.asarray(mask, dtype=bool).reshape(shape)
    unit, row = (array.reshape(shape) for array in _pixel_reflections(shot, reflections))
    panel_of = np.broadcast_to(np.arange(shape[0])[:, None, None], shape).reshape(-1)
    flat_row, flat_unit = row.reshape(-1), unit.reshape(-1)
    flat_key = np.where(flat_row >= 0, flat_row * shape[0] + panel_of, -1)  # a reflection on one panel
    assigned = np.flatnonzero(flat_key >= 0)
    keys, inverse = np.unique(flat_key[assigned], return_inverse=True)
    peaks = np.zeros(len(keys))
    np.maximum.at(peaks, inverse, flat_unit[assigned])
    spot = np.zeros(flat_row.shape, dtype=bool)
    spot[assigned] = flat_unit[assigned] > SPOT_FRACTION * peaks[inverse]
    background_pixels = (~spot.reshape(shape)) & (row >= 0) & used
    kept = peaks >= MIN_PARTIALITY * peaks.max() if len(peaks) else np.zeros(0, dtype=bool)
    spot_pixels = np.flatnonzero(spot)
    spot_pixels = spot_pixels[np.argsort(flat_key[spot_pixels], kind="stable")]
    bounds = np.searchsorted(flat_key[spot_pixels], keys, side="left"), np.searchsorted(flat_key[spot_pixels], keys,
                                                                                      side="right")
    hkl, intensity, variance, unit_sum = [], [], [], []
    for index in np.flatnonzero(kept):
        pixels = spot_pixels[bounds[0][index]:bounds[1][index]]
        panel, slow, fast = np.unravel_index(pixels, shape)
        if not used[panel, slow, fast].all():
            continue  # a spot touching a masked pixel is not integrated
        box = (panel[0], slice(max(slow.min() - BACKGROUND_MARGIN_PX, 0), slow.max() + BACKGROUND_MARGIN_PX + 1),
               slice(max(fast.min() - BACKGROUND_MARGIN_PX, 0), fast.max() + BACKGROUND_MARGIN_PX + 1))
        around = observed[box][background_pixels[box]]
        if len(around) < 2 * len(pixels):
            continue  # too little background to subtract
        background = float(np.median(around))
        counts = observed[panel, slow, fast]
        weight = float(unit[panel, slow, fast].sum()) * scale
        # Poisson variance of the spot's counts, and of the background's median (≈ π/2 · var / m)
        var = float(np.maximum(counts, 1.0).sum()) + len(pixels) ** 2 * np.pi / 2 * max(background, 1.0) / len(around)
        hkl.append(reflections.p1_hkl[keys[index] // shape[0]])
        intensity.append((counts.sum() - background * len(pixels)) / weight)
        variance.append(var / weight ** 2)
        unit_sum.append(weight / scale)
    return IntegratedSpots(hkl=np.array(hkl, dtype=np.int64).reshape(-1, 3), intensity=np.array(intensity),
                         variance=np.array(variance), unit_sum=np.array(unit_sum))


def _merge(observations: IntegratedSpots, reflections: ReflectionSet,
           weighted: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean intensity of each parameter of ``reflections`` (inverse-variance weighted, or plain),
    its amplitude and the amplitude's standard error (NaN where not measured), and the number of
    observations."""
    n = reflections.n_parameters
    parameter = reflections.parameter_of(observations.hkl) if len(observations.hkl) else np.zeros(0, np.int64)
    keep = parameter >= 0
    parameter, intensity = parameter[keep], observations.intensity[keep]
    weight = 1.0 / observations.variance[keep]
    if not weighted:
        weight = np.full_like(weight, 1.0 / observations.variance[keep].mean()) if len(weight) else weight
    total_weight = np.bincount(parameter, weight, minlength=n)
    counts = np.bincount(parameter, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.bincount(parameter, weight * intensity, minlength=n) / total_weight
        chi2 = np.bincount(parameter, weight * (intensity - mean[parameter]) ** 2, minlength=n) / np.maximum(counts - 1, 1)
        sigma = np.sqrt(np.maximum(chi2, 1.0) / total_weight)
    mean[counts == 0] = np.nan
    sigma[counts == 0] = np.nan
    positive = np.maximum(mean, 0.0)
    F = np.sqrt(positive)
    sigma_F = np.sqrt(positive + sigma) - F  # σ_I / (2F) for strong reflections, √σ_I at I = 0
    return F, sigma_F, counts
