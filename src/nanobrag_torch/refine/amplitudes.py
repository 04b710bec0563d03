"""The amplitude step of a dataset refinement: intensities, scales and background levels from
pixels that are linear in them.

For fixed orientations every compared pixel is ``μ = s · u · I[j] + b · w``
(:class:`~nanobrag_torch.refine.shot_work.AmplitudeTerms`): linear in the intensity ``I = |F|²``
of the one reflection parameter ``j`` it sees, and in its shot's scale ``s`` and background
level ``b``. :func:`solve_amplitudes` minimises the loss over all of them at once by projected
Fisher scoring: the Fisher matrix is diagonal in the intensities, block-diagonal in the shots'
factors, and the two are coupled only through the reflections each shot records, so the
Newton step is solved through the Schur complement on the shots' factors (a dense matrix of
two rows per shot). No rendering is needed: only ``I, s, b`` travel to where the shots are held
and per-parameter, per-shot and per-(reflection, shot) sums (:func:`amplitude_sums`) come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from .likelihoods import Likelihood
from .shot_work import AmplitudeTerms

MAX_ITERATIONS = 30
"""Fisher-scoring iterations at most."""

TOLERANCE_SIGMA = 1e-2
"""Converged when no intensity, scale or level moves by more than this fraction of its
standard error (as the single-image solver's
:data:`~nanobrag_torch.refine.solver.STEP_TOLERANCE_SIGMA`). Fisher scoring converges
linearly here, by about a tenth a step near the end, so a tighter tolerance costs many
iterations for changes far below the errors."""

HALVINGS = 30
"""Halvings of a step that raises the loss before the iterations stop."""


@dataclass
class AmplitudeSums:
    """Sums over pixels of the amplitude problem, by parameter and by shot.

    Attributes
    ----------
    loss, gradient, fisher : tensor (n,)
        By intensity parameter: the loss of its pixels, ``Σ s u ∂L/∂μ`` and ``Σ (s u)² W``
        (W the likelihood's Fisher weights).
    pixels : tensor (n,)
        Pixels that see each parameter.
    shot_loss : tensor (S,)
        By shot: the loss of its pixels.
    shot_gradient : tensor (S, 2)
        ``Σ (u I, w) ∂L/∂μ``: the gradient in the shot's scale and level.
    shot_fisher : tensor (S, 2, 2)
        ``Σ (u I, w)ᵀ W (u I, w)``.
    coupling : tuple (parameter, shot, values) or None
        The Fisher matrix between intensities and shots' factors, as the (q,) parameters and
        (q,) shots of its non-zero pairs and their (q, 2) values ``Σ s u W (u I, w)``; only
        when asked for.
    """

    loss: torch.Tensor
    gradient: torch.Tensor
    fisher: torch.Tensor
    pixels: torch.Tensor
    shot_loss: torch.Tensor
    shot_gradient: torch.Tensor
    shot_fisher: torch.Tensor
    coupling: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None

    def __add__(self, other: "AmplitudeSums") -> "AmplitudeSums":
        summed = [getattr(self, name) + getattr(other, name) for name in _SUMMED]
        if self.coupling is None or other.coupling is None:
            return AmplitudeSums(*summed, coupling=self.coupling or other.coupling)
        return AmplitudeSums(*summed, coupling=tuple(torch.cat(pair) for pair in zip(self.coupling, other.coupling)))


_SUMMED = ("loss", "gradient", "fisher", "pixels", "shot_loss", "shot_gradient", "shot_fisher")


DETAILS = ("loss", "fisher", "coupling")
"""What :func:`amplitude_sums` can sum: the losses only, also the gradients and Fisher
information, or also the coupling."""


def amplitude_sums(terms: Optional[AmplitudeTerms], intensities: torch.Tensor, scales: torch.Tensor,
                   levels: torch.Tensor, likelihood: Likelihood, detail: str = "fisher") -> AmplitudeSums:
    """The sums of :class:`AmplitudeSums` over some shots' pixels.

    Parameters
    ----------
    terms : AmplitudeTerms or None
        The shots' pixels (None: no pixel), each shot's pixels together and ordered by
        parameter (as :func:`~nanobrag_torch.refine.shot_work.amplitude_terms` makes them).
    intensities : tensor (n,) of float64
        ``|F|²`` of every parameter.
    scales, levels : tensor (S,) of float64
        Every shot's scale and background level (by position in the dataset).
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.
    detail : {"loss", "fisher", "coupling"}
        ``"loss"``: only :attr:`AmplitudeSums.loss` and :attr:`AmplitudeSums.shot_loss` (the
        other sums are zero; what a line search needs); ``"fisher"``: every sum but the
        coupling; ``"coupling"``: also :attr:`AmplitudeSums.coupling`.

    Returns
    -------
    AmplitudeSums

    Raises
    ------
    ValueError
        ``detail`` is not one of :data:`DETAILS`.
    """
    if detail not in DETAILS:
        raise ValueError(f"amplitude_sums: detail = {detail!r} must be one of {DETAILS}")
    n, shots = intensities.numel(), scales.numel()
    zeros = torch.zeros(n, dtype=torch.float64)
    sums = AmplitudeSums(zeros, zeros.clone(), zeros.clone(), zeros.clone(), torch.zeros(shots, dtype=torch.float64),
                         torch.zeros((shots, 2), dtype=torch.float64), torch.zeros((shots, 2, 2), dtype=torch.float64))
    if terms is None or terms.parameter.numel() == 0:
        return sums

    # scatter-adds: torch's weighted bincount takes two to four times as long
    def by_parameter(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.float64).scatter_add_(0, terms.parameter, values)

    def by_shot(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(shots, dtype=torch.float64).scatter_add_(0, terms.shot, values)

    signal = terms.unit * intensities[terms.parameter]
    scale = scales[terms.shot]
    expected = scale * signal + levels[terms.shot] * terms.background
    loss = likelihood.pixel_losses(expected, terms.observed)
    sums.loss, sums.shot_loss = by_parameter(loss), by_shot(loss)
    if detail == "loss":
        return sums
    slope = likelihood.gradient(expected, terms.observed)
    weight = likelihood.fisher_weights(expected)
    if weight.dim() == 0:
        weight = weight.expand_as(expected)
    a = scale * terms.unit
    sums.gradient = by_parameter(a * slope)
    sums.fisher = by_parameter(a * a * weight)
    sums.pixels = by_parameter(torch.ones_like(loss))
    derivatives = (signal, terms.background)
    for i, first in enumerate(derivatives):
        sums.shot_gradient[:, i] = by_shot(first * slope)
        for j, second in enumerate(derivatives[i:], start=i):
            sums.shot_fisher[:, i, j] = sums.shot_fisher[:, j, i] = by_shot(first * second * weight)
    if detail == "coupling":
        pairs, where = torch.unique_consecutive(terms.parameter * shots + terms.shot, return_inverse=True)
        values = torch.stack([torch.zeros(pairs.numel(), dtype=torch.float64).scatter_add_(0, where, d * a * weight)
                              for d in derivatives], dim=1)
        sums.coupling = (pairs // shots, pairs % shots, values)
    return sums


Sums = Callable[..., AmplitudeSums]


def solve_amplitudes(sums: Sums, intensities: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
                     covariance_factor: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                        AmplitudeSums]:
    """Minimise the loss over ``I ≥ 0``, ``s > 0``, ``b ≥ 0`` by projected Fisher scoring of all
    of them together.

    Each iteration solves the Newton system through the Schur complement on the shots' factors
    (intensities held at 0 by their bound are left out of the step), projects the step onto
    the bounds and halves it until the loss does not rise. The loss is flat along one
    direction (all scales times α, all intensities over α); a small damping keeps the step off
    it, and at the end the scales are divided by their mean over the shots that have pixels
    (the intensities multiplied by it): the amplitudes are on the scale of the shots' nominal
    fluence.

    Parameters
    ----------
    sums : callable
        ``sums(I, s, b, detail="fisher")``: the :class:`AmplitudeSums` at those values
        (:func:`amplitude_sums`'s ``detail``).
    intensities : tensor (n,) of float64
        Starting intensities (negative ones start at 0).
    scales, levels : tensor (S,) of float64
        Starting scales and background levels of every shot.
    covariance_factor : float
        The likelihood's covariance factor (2 for a deviance, twice the negative log-likelihood).

    Returns
    -------
    intensities : tensor (n,)
    variance : tensor (n,)
        Of each intensity, the shots' factors free and their mean scale fixed (the inverse
        Fisher matrix's diagonal); inf for a parameter no pixel sees.
    scales, levels : tensor (S,)
    last : AmplitudeSums
        The sums at the solution.
    """
    intensities = intensities.clamp(min=0).clone()
    factors = torch.stack([scales, levels], dim=1).clone()
    lowest = torch.tensor([1e-12, 0.0], dtype=torch.float64)
    for _ in range(MAX_ITERATIONS):
        current = sums(intensities, factors[:, 0], factors[:, 1], detail="coupling")
        step_I, step_f = _newton_step(current, intensities, factors[:, 0])
        loss = float(current.loss.sum())
        accepted = False
        for _ in range(HALVINGS):
            trial_I = (intensities + step_I).clamp(min=0)
            trial_f = torch.maximum(factors + step_f, lowest)
            if float(sums(trial_I, trial_f[:, 0], trial_f[:, 1], detail="loss").loss.sum()) <= loss:
                accepted = True
                break
            step_I, step_f = step_I / 2, step_f / 2
        if not accepted:
            break
        sigma_I = torch.sqrt(covariance_factor / current.fisher.clamp(min=1e-300))
        sigma_f = torch.sqrt(covariance_factor / torch.diagonal(current.shot_fisher, dim1=1, dim2=2).clamp(min=1e-300))
        moved = max(float(((trial_I - intensities).abs() / sigma_I).max()),
                    float(((trial_f - factors).abs() / sigma_f).max()))
        intensities, factors = trial_I, trial_f
        if moved <= TOLERANCE_SIGMA:
            break
    current = sums(intensities, factors[:, 0], factors[:, 1])
    has_pixels = current.shot_fisher[:, 0, 0] > 0
    mean_scale = float(factors[has_pixels, 0].mean()) if bool(has_pixels.any()) else 1.0
    factors[has_pixels, 0] /= mean_scale
    intensities = intensities * mean_scale
    current = sums(intensities, factors[:, 0], factors[:, 1], detail="coupling")
    variance = _intensity_variance(current, intensities, factors[:, 0], covariance_factor)
    return intensities, variance, factors[:, 0].clone(), factors[:, 1].clone(), current


DAMPING = 1e-9
"""Relative damping of the Schur complement's diagonal: keeps the Newton step off flat
directions the gauge does not fix (a dataset whose shots fall into groups that share no
reflection has one common scale per group)."""


def _schur_system(sums: AmplitudeSums, intensities: torch.Tensor, scales: torch.Tensor):
    """The inverse intensity curvatures (0 where an intensity is held at its bound or no pixel
    sees it), the coupling (n, 2S) as a sparse matrix, the Schur complement on the shots'
    factors with the gauge fixed, and which factors no pixel determines.

    The loss is flat along ``(I → I/α, s → α s)``: in the Schur complement that is the direction
    of the scales, which a penalty of the size of the matrix's diagonal removes (the gauge: the
    mean scale does not move)."""
    n, shots = intensities.numel(), sums.shot_fisher.shape[0]
    held = (intensities <= 0) & (sums.gradient > 0)
    inverse = torch.where((sums.fisher > 0) & ~held, 1.0 / sums.fisher.clamp(min=1e-300), torch.zeros_like(intensities))
    parameter, shot, values = sums.coupling
    index = torch.stack([parameter.repeat_interleave(2), torch.stack([2 * shot, 2 * shot + 1], dim=1).reshape(-1)])
    coupling = torch.sparse_coo_tensor(index, values.reshape(-1), (n, 2 * shots), check_invariants=False).coalesce()
    rows = coupling.indices()[0]
    weighted = torch.sparse_coo_tensor(coupling.indices(), coupling.values() * inverse[rows].sqrt(), (n, 2 * shots),
                                       is_coalesced=True, check_invariants=False)
    blocks = _block_diagonal(sums.shot_fisher)
    schur = blocks - weighted.t() @ weighted.to_dense()
    diagonal = torch.diagonal(schur).clone()
    fixed = torch.diagonal(blocks) <= 0
    gauge = torch.stack([torch.where(fixed[0::2], torch.zeros_like(scales), scales), torch.zeros_like(scales)],
                        dim=1).reshape(-1)
    if float(gauge @ gauge) > 0:
        size = float(diagonal[~fixed].abs().mean())
        schur += size * torch.outer(gauge, gauge) / float(gauge @ gauge)
    schur += torch.diag(torch.where(fixed, torch.ones_like(diagonal), DAMPING * diagonal.abs()))
    return inverse, coupling, schur, fixed


def _newton_step(sums: AmplitudeSums, intensities: torch.Tensor, scales: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The Fisher-scoring step of the intensities and the shots' factors."""
    inverse, coupling, schur, fixed = _schur_system(sums, intensities, scales)
    gradient_f = torch.where(fixed, torch.zeros_like(fixed, dtype=torch.float64), sums.shot_gradient.reshape(-1))
    rhs = -gradient_f + coupling.t() @ (inverse * sums.gradient)
    step_f = torch.linalg.solve(schur, rhs)
    step_f = torch.where(fixed, torch.zeros_like(step_f), step_f)
    step_I = -inverse * (sums.gradient + coupling @ step_f)
    return step_I, step_f.reshape(-1, 2)


def _intensity_variance(sums: AmplitudeSums, intensities: torch.Tensor, scales: torch.Tensor,
                        covariance_factor: float) -> torch.Tensor:
    """The diagonal of the intensities' covariance with the shots' factors free (the gauge
    fixed): ``factor · (D⁻¹ + diag(D⁻¹ C S⁻¹ Cᵀ D⁻¹))``; inf for an intensity no pixel sees."""
    inverse, coupling, schur, _ = _schur_system(sums, intensities, scales)
    spread = (coupling.to_dense() * inverse[:, None])
    extra = (spread @ torch.linalg.inv(schur) * spread).sum(dim=1)
    return torch.where(sums.fisher > 0, covariance_factor * (1.0 / sums.fisher.clamp(min=1e-300) + extra),
                       torch.full_like(intensities, float("inf")))


def _block_diagonal(blocks: torch.Tensor) -> torch.Tensor:
    """(S, 2, 2) blocks as one (2S, 2S) matrix."""
    shots = blocks.shape[0]
    matrix = torch.zeros((2 * shots, 2 * shots), dtype=blocks.dtype)
    index = torch.arange(shots)
    for i in range(2):
        for j in range(2):
            matrix[2 * index + i, 2 * index + j] = blocks[:, i, j]
    return matrix
