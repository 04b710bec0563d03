"""Refinement of physical parameters against an observed image: :func:`~nanobrag_torch.refine.refine`.

The refinement maximises the likelihood of the observed photon counts under the simulated
image, from a starting point that may be far outside the basin of the likelihood, and
reports standard errors from the Fisher information. It runs in stages, each recorded in
the result's ``history``:

1. **orientation search** (when a crystal rotation — ``phi_start_deg``, ``misset_deg`` — or
   the mosaic spread is refined): the spots of the observed image are indexed on a grid of
   crystal rotations up to 4° about every direction the refined angles can move, then on finer
   grids of rotation and mosaic spread, each spot matched to its best mosaic domain
   (``nanobrag_torch.refine.indexing``);
2. **spot positions** (when a parameter that moves spots is refined: orientation, cell,
   detector geometry, wavelength): the indexed spots' position errors are minimised by robust
   Gauss–Newton (``nanobrag_torch.refine.spot_fit``), which brings distance and
   beam-centre errors of many pixels into the basin of the likelihood;
3. **choice**: the likelihood decides where the local stage starts: at the start or at one of
   the points the first stages reached, whichever image fits the observed one best over the
   pixels near the spots that any of them predicts or that are observed. A search that went
   astray on a problem with few or uninformative spots thus costs time, not the answer. When
   the mosaic spread is refined, the likelihood then scans it at that point (``"spread
   scan"``, recorded when it finds a better spread): counting indexed spots tells the spread
   poorly when they are few;
4. **local**: Levenberg–Marquardt with Fisher scoring on the exact Jacobian (forward-mode
   automatic differentiation) of the likelihood over the pixels near the spots that the chosen
   point predicts or that are observed (``nanobrag_torch.refine.pixels.informative_pixels``),
   until every step is below 0.01 standard errors (``nanobrag_torch.refine.solver``).

Each ``history`` entry gives the loss over the pixels it names (``"pixels"``: the comparison's
set for the first stages, the local stage's set after).

The standard errors are the square roots of the diagonal of the inverse Fisher information at
the estimate (for ``"mse"``, scaled by the residual variance).
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from ..config import BeamConfig, CrystalConfig, DetectorConfig, MultiPanelDetectorConfig
from ..layout import PixelLayout
from ..models.detector import Detector
from .dataset import DatasetResult, Shot, ShotResult, refine_dataset
from .indexing import search_orientation, spread_grid
from .jacobian import forward_jacobian
from .likelihoods import Gaussian, Likelihood, MeanSquaredError, Poisson, as_likelihood, misfit_warning
from .model import ExperimentModel
from .parameters import mosaic_spread_index, parse_parameters
from .pixels import brightest_pixels, informative_pixels
from .progress import Progress
from .result import RefinementResult
from .solver import PixelObjective, levenberg_marquardt
from .spot_fit import fit_spot_positions
from .spots import Spots, find_spots

__all__ = ["refine", "RefinementResult", "Poisson", "Gaussian", "MeanSquaredError", "find_spots", "Spots",
           "forward_jacobian", "Shot", "refine_dataset", "DatasetResult", "ShotResult"]


def refine(observed, parameters: Mapping[str, float], *, crystal: CrystalConfig,
           detector: Union[DetectorConfig, MultiPanelDetectorConfig],
           beam: BeamConfig, structure_factors=None, likelihood: Union[str, Likelihood] = "poisson",
           mask=None, background=None, bounds: Optional[Mapping[str, Tuple[Optional[float], Optional[float]]]] = None,
           dtype: torch.dtype = torch.float32, device=None, progress: Optional[bool] = None) -> RefinementResult:
    """Refine parameters of an experiment against an observed image.

    Parameters
    ----------
    observed : tensor or array (spixels, fpixels) or (n_panels, spixels, fpixels)
        Photons per pixel (counts with the ADC offset removed, or a noise-free expected image):
        ``(spixels, fpixels)`` for a one-panel detector, or one image per panel
        (:class:`~nanobrag_torch.layout.PixelLayout`).
    parameters : mapping of str to float
        The parameters to refine and their starting values. A name is ``"crystal.<field>"``,
        ``"detector.<field>"`` or ``"beam.<field>"`` with ``[i]`` for a field of three values
        (``"crystal.misset_deg[0]"``, ``"crystal.N_cells[2]"``), or ``"scale"`` for an
        overall factor on the simulated image. See
        :data:`~nanobrag_torch.refine.parameters.REFINABLE_FIELDS`. A multi-panel detector's
        panels and groups are named by index: ``"detector.panels[2].shift_mm[0]"``,
        ``"detector.panels[2].rotation_deg[1]"``, ``"detector.groups[0].shift_mm[2]"``,
        ``"detector.groups[0].rotation_deg[2]"`` (and ``"detector.panels[k].<field>"`` for any
        refinable detector field of panel k).
    crystal, detector, beam : CrystalConfig, DetectorConfig or MultiPanelDetectorConfig, BeamConfig
        The experiment. The refined fields are replaced by the parameters' values.
    structure_factors : StructureFactors or tuple (grid, metadata), optional
        As :func:`nanobrag_torch.io.hkl.read_hkl_file` returns them, with ``crystal.default_F``
        outside the table as for a :class:`~nanobrag_torch.models.crystal.Crystal`
        (:func:`~nanobrag_torch.structure_factors.as_structure_factors`); default: every
        amplitude is ``crystal.default_F``.
    likelihood : {"poisson", "gaussian", "mse"} or Poisson, Gaussian, MeanSquaredError
        ``"poisson"``: photon counting (the exact likelihood of a counting detector; works on a
        noise-free image too); ``"gaussian"``: Poisson variance plus readout noise
        (``Gaussian(readout_noise_photons=σ)``); ``"mse"``: least squares.
    mask : array of bool, optional
        Pixels to use (True), of ``observed``'s shape. Default: all. The detector's own
        ``detector.mask`` and ``detector.roi`` apply as well (the same rule as the simulator's:
        a masked pixel, or one outside the ROI, is neither rendered nor compared).
    background : float or array, optional
        Expected background photons per pixel, of ``observed``'s shape, added to the simulated
        image. Default 0.
    bounds : mapping of str to (float or None, float or None), optional
        Replaces a parameter's default bounds (mosaic spread ≥ 0, N ≥ 1, lengths and the
        wavelength > 0, cell angles in (0, 180)).
    dtype : torch.dtype
        Precision of the simulation (float32 is accurate enough and twice as fast).
    device : torch.device or str, optional
        Where the simulation runs; ``observed``, ``mask``, ``background`` and the structure
        factors are moved there once. Default: ``observed``'s device when it is a tensor, else
        the CPU.
    progress : bool, optional
        Draw a progress bar (stage, evaluations, loss) on standard error. Default: when
        standard error is a terminal.

    Returns
    -------
    RefinementResult
        Estimates, standard errors, covariance, history, convergence flag and message, the
        number of simulator evaluations, the pixels compared (flat indices, on the CPU), and
        the goodness of fit over them (≈ 1 when the model fits to within the likelihood's
        noise; the message then gains a sentence starting with "Warning:" when it clearly
        does not, see ``refine.likelihoods.misfit_warning``).

    Raises
    ------
    ValueError
        ``observed``, ``mask`` or ``background`` of the wrong shape, negative or non-finite
        counts, a mask (with the detector's mask and ROI) that selects no pixel, no
        parameters, an unknown or non-refinable parameter name, a start outside its bounds, or
        a parameter the image does not depend on; an image without spots (blank or very faint:
        no 3 × 3 box of pixels holds ``refine.spots.MIN_SPOT_PHOTONS`` photons plus three
        standard deviations of the background above the background), the message giving the
        threshold and the brightest pixel's value.

    Examples
    --------
    >>> result = refine(image, {"crystal.phi_start_deg": 1.0, "crystal.mosaic_spread_deg": 0.5},
    ...                 crystal=crystal_config, detector=detector_config, beam=beam_config,
    ...                 structure_factors=read_hkl_file("scaled.hkl"))  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    """
    if device is None:
        device = observed.device if isinstance(observed, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    detector_pixels = Detector(detector, device=device)
    observed = _image("observed", observed, detector_pixels.layout, device)
    if bool((observed < 0).any()):
        raise ValueError(f"observed has {int((observed < 0).sum())} negative pixels (minimum "
                         f"{float(observed.min()):g}): give photon counts with the ADC offset removed")
    used = _allowed(mask, detector_pixels, device)
    background = _background(background, detector_pixels.layout, device)
    likelihood = as_likelihood(likelihood)
    configs = {"crystal": crystal, "detector": detector, "beam": beam}
    params, x = parse_parameters(parameters, configs, bounds)
    lower = torch.tensor([p.lower for p in params], dtype=torch.float64)
    upper = torch.tensor([p.upper for p in params], dtype=torch.float64)
    bar = Progress(progress)
    try:
        model = ExperimentModel(configs, structure_factors, params, background.reshape(-1), dtype, device,
                                on_evaluation=bar.evaluation)
        spots = find_spots(observed, background, used)
        waypoints = _global_stages(model, x, spots, lower, upper, bar)
        history = _History(params, bar)
        start, objective = _choose_start(model, likelihood, observed, background, used, spots, waypoints, history)
        bar.stage("local")
        local = levenberg_marquardt(objective, start, lower, upper,
                                    on_iteration=lambda values, loss: history.record("local", values, loss, objective))
    finally:
        bar.close()
    covariance = objective.covariance(local.matrix, local.expected, len(params))
    names = [p.name for p in params]
    stderr = torch.sqrt(torch.diag(covariance).clamp(min=0))
    goodness, excess_sigmas = likelihood.goodness_of_fit(local.expected, objective.observed)
    return RefinementResult(
        names=names, values={n: float(v) for n, v in zip(names, local.x)},
        stderr={n: float(s) for n, s in zip(names, stderr)}, covariance=covariance, history=history.entries,
        converged=local.converged,
        message=local.message + _degeneracy(local.matrix, names) + misfit_warning(likelihood, goodness, excess_sigmas),
        evaluations=model.evaluations, pixels=int(objective.pixels.numel()), pixel_indices=objective.pixels.cpu(),
        goodness_of_fit=goodness)


SINGULAR_EIGENVALUE = 1e-8
"""An eigenvalue of the Fisher matrix scaled to unit diagonal below this is a direction the
image does not determine."""


def _degeneracy(matrix: torch.Tensor, names: List[str]) -> str:
    """A sentence naming the parameters the image cannot tell apart, or nothing."""
    scale = torch.sqrt(torch.diag(matrix).clamp(min=1e-300))
    values, vectors = torch.linalg.eigh(matrix / (scale[:, None] * scale[None, :]))
    weak = vectors[:, values < SINGULAR_EIGENVALUE * float(values.max())]
    if weak.shape[1] == 0:
        return ""
    involved = [name for name, weight in zip(names, weak.abs().max(dim=1).values) if weight > 0.1]
    return (f"; the image cannot tell {', '.join(involved)} apart (the Fisher matrix is singular): "
            f"their standard errors are meaningless, refine fewer of them")


class _History:
    """The entries of :attr:`RefinementResult.history`, shown on the progress bar as they come."""

    def __init__(self, parameters, bar: Progress):
        self._names = [p.name for p in parameters]
        self._bar = bar
        self.entries: List[Dict[str, object]] = []

    def record(self, stage: str, values: torch.Tensor, loss: float, objective: PixelObjective) -> None:
        self.entries.append({"iteration": len(self.entries), "stage": stage, "loss": loss,
                             "values": dict(zip(self._names, values.tolist())),
                             "pixels": int(objective.pixels.numel())})
        self._bar.loss(loss)


def _global_stages(model: ExperimentModel, x: torch.Tensor, spots, lower: torch.Tensor, upper: torch.Tensor,
                   bar: Progress) -> List[Tuple[str, torch.Tensor]]:
    """The start and the points the orientation search and the spot-position fit reach, by stage."""
    params = model.parameters
    waypoints = [("start", x)]
    if any(p.is_orientation or p.is_mosaic_spread for p in params):
        bar.stage("orientation search")
        x = torch.minimum(torch.maximum(search_orientation(model, params, x, spots)[0], lower), upper)
        waypoints.append(("orientation search", x))
    if any(p.fitted_to_spot_positions for p in params):
        bar.stage("spot positions")
        x = fit_spot_positions(model, params, x, spots, lower, upper)
        waypoints.append(("spot positions", x))
    return waypoints


def _choose_start(model: ExperimentModel, likelihood: Likelihood, observed: torch.Tensor, background: torch.Tensor,
                  used: torch.Tensor, spots, waypoints, history: _History) -> Tuple[torch.Tensor, PixelObjective]:
    """Record the waypoints' losses over the pixels near any of their spots, and return the best
    waypoint (its mosaic spread re-chosen by :func:`_scan_spread`) with the objective of the
    local stage (the pixels near that point's spots).

    One full image is rendered per waypoint (and for the scanned spread) and only its brightest
    pixels are kept, so that no more than one full image is held at a time; the losses come
    from renders of the chosen pixels.
    """

    def bright_pixels(values):
        signal = (model.expected(values) - background.reshape(-1)).reshape(observed.shape)
        return brightest_pixels(torch.where(used, signal, torch.zeros_like(signal)))

    bright = [bright_pixels(values) for _, values in waypoints]
    comparison = PixelObjective(model, likelihood, observed.reshape(-1), _pixels(bright, spots, used))
    for stage, values in waypoints:
        history.record(stage, values, comparison.loss(values), comparison)
    best = min(range(len(waypoints)), key=lambda k: _finite_or_inf(history.entries[k]["loss"]))
    start, start_bright = waypoints[best][1], bright[best]
    scanned = _scan_spread(model, comparison, start, history.entries[best]["loss"])
    if scanned is not None:
        start, start_bright = scanned[0], bright_pixels(scanned[0])
        history.record("spread scan", start, scanned[1], comparison)
    return start, PixelObjective(model, likelihood, observed.reshape(-1), _pixels([start_bright], spots, used))


SPREAD_SCAN_POINTS = 9
"""Spreads the choice stage's likelihood scan tries, from a sixth to six times the chosen
point's (each about 1.6 times the previous: the local stage refines from the best)."""


def _scan_spread(model: ExperimentModel, comparison: PixelObjective, x: torch.Tensor,
                 loss: float) -> Optional[Tuple[torch.Tensor, float]]:
    """The mosaic spread (when refined) that the likelihood prefers at ``x``'s other values,
    among :func:`~nanobrag_torch.refine.indexing.spread_grid`'s around ``x``'s spread, with its
    loss; None when none beats ``loss``. :data:`SPREAD_SCAN_POINTS` spreads are tried.

    The spot indexing of the search tells the spread poorly when spots are few: a wider spread
    turns the domains over more orientations, so the count of indexed spots rarely drops, and
    the search may pick a spread several times too wide, from which the local stage can stop in
    a wrong minimum. The likelihood over the compared pixels is smooth in the spread.
    """
    index = mosaic_spread_index(model.parameters)
    if index is None:
        return None
    best = None
    for spread in spread_grid(float(x[index]), index, model.parameters, SPREAD_SCAN_POINTS):
        candidate = x.clone()
        candidate[index] = spread
        candidate_loss = _finite_or_inf(comparison.loss(candidate))
        if candidate_loss < (best[1] if best is not None else _finite_or_inf(loss)):
            best = (candidate, candidate_loss)
    return best


def _pixels(bright, spots, used) -> torch.Tensor:
    pixels = informative_pixels(bright, spots, used)
    if pixels.numel() == 0:
        raise ValueError("the mask holds no pixel near a predicted or observed spot: nothing to refine against")
    return pixels


def _finite_or_inf(loss: float) -> float:
    return loss if math.isfinite(loss) else math.inf


def _image(name: str, value, layout: PixelLayout, device: torch.device) -> torch.Tensor:
    """A finite float64 image of the detector, ``(panels, spixels, fpixels)``, on ``device``."""
    image = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    image = layout.as_panels(image, name).to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(image).all()):
        raise ValueError(f"{name} has {int((~torch.isfinite(image)).sum())} non-finite pixels (NaN or inf)")
    return image


def _allowed(mask, detector: Detector, device: torch.device) -> torch.Tensor:
    """The pixels compared, ``(panels, spixels, fpixels)`` of bool on ``device``: those the
    detector renders (:meth:`~nanobrag_torch.models.detector.Detector.rendered_pixels`: inside
    its ROI and not in its mask) that ``mask`` (when given) selects."""
    layout = detector.layout
    allowed = torch.zeros(layout.total, dtype=torch.bool, device=device)
    allowed[detector.rendered_pixels().to(device)] = True
    allowed = layout.as_panels(allowed)
    if mask is not None:
        selected = _image("mask", mask, layout, device) != 0
        if not bool(selected.any()):
            raise ValueError("mask selects no pixel (all are 0/False)")
        allowed &= selected
    if not bool(allowed.any()):
        rois = [config.roi for config in detector.panel_configs]
        raise ValueError(f"the mask argument, DetectorConfig.mask and DetectorConfig.roi = "
                         f"{rois[0] if len(rois) == 1 else rois} together select no pixel")
    return allowed


def _background(background, layout: PixelLayout, device: torch.device) -> torch.Tensor:
    """The expected background, ``(panels, spixels, fpixels)`` float64 on ``device``."""
    if background is None:
        background = 0.0
    if np.ndim(background) == 0:
        background = torch.full(layout.image_shape, float(background), dtype=torch.float64)
    values = _image("background", background, layout, device)
    if bool((values < 0).any()):
        raise ValueError(f"background has negative pixels (minimum {float(values.min()):g} photons)")
    return values

