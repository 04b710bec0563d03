"""Parameters every shot of a dataset shares besides the amplitudes: the detector's distance,
beam centre or panels, the crystals' domain size or mosaic spread, the wavelength.

``refine_dataset(shared=[...])`` refines them after the shots' own geometry steps, by a few
Levenberg–Marquardt iterations a cycle on the shared parameters and every shot's own together
(orientation, scale, background level; the amplitudes held). Each shot's part is small: in its
own parameters ``a`` and the shared ``s`` its Fisher matrix and gradient are
``[[A, B], [Bᵀ, C]]`` and ``(g_a, g_s)`` (:class:`ShotBlocks`), and eliminating ``a`` leaves
``C − Bᵀ A⁻¹ B`` and ``g_s − Bᵀ A⁻¹ g_a`` (:meth:`ShotBlocks.reduced`). These are summed over
the shots where they are held, the shared step is solved from the sums, and every shot then
takes the step of its own parameters that goes with it (:meth:`ShotBlocks.own_step`), so that
a shared parameter a shot's orientation or scale can mimic (the distance, the beam centre)
moves as far in one step as the data say, instead of a little each cycle. A step is kept only if
it lowers the loss of every shot together. Only the sums (a few numbers) travel, as for the
amplitudes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from ..structure_factors import StructureFactors
from .likelihoods import Likelihood
from .parameters import IMAGE_FACTORS, Parameter, configs_with, parameters_at
from .shot_work import ShotWork, refined_positions, shot_model
from .solver import STEP_TOLERANCE_SIGMA, solve_linear

SHARED_ITERATIONS = 5
"""Levenberg–Marquardt iterations of the shared parameters a cycle at most: the pixels' loss is
far from quadratic in a detector's geometry that puts the spots a fraction of a pixel off, so a
step takes several."""

FIRST_DAMPING = 1e-3
"""Levenberg–Marquardt damping of a cycle's first try."""

MIN_DAMPING = 1e-9
"""The damping after a kept step is ten times smaller, down to this."""

DAMPING_TRIES = 6
"""Tries of a step at most, the damping ten times larger each; every try is one loss pass over
the shots."""


@dataclass
class SharedTerms:
    """The shared parameters' part of the Fisher matrix and gradient, the shots' own parameters
    eliminated, summed over some shots; with their loss, pixels and covariance factor.

    Attributes
    ----------
    loss : float
        The shots' loss.
    gradient : tensor (Q,) of float64
        ``Σ g_s − Bᵀ A⁻¹ g_a``.
    matrix : tensor (Q, Q) of float64
        ``Σ C − Bᵀ A⁻¹ B`` (each block damped as the try asks).
    pixels : int
        Pixels compared.
    factor_pixels : float
        Each shot's covariance factor (``Likelihood.covariance_factor``) times its pixels,
        summed: over :attr:`pixels`, the factor of the whole dataset.
    """

    loss: float
    gradient: torch.Tensor
    matrix: torch.Tensor
    pixels: int
    factor_pixels: float

    @classmethod
    def summed(cls, parts: Sequence[Optional["SharedTerms"]]) -> Optional["SharedTerms"]:
        """The terms of several parts together (None, a shot left out, is skipped).

        Parameters
        ----------
        parts : sequence of SharedTerms or None
            The parts.

        Returns
        -------
        SharedTerms or None
            None when every part is None.
        """
        kept = [part for part in parts if part is not None]
        if not kept:
            return None
        return cls(loss=sum(p.loss for p in kept), gradient=sum(p.gradient for p in kept),
                   matrix=sum(p.matrix for p in kept), pixels=sum(p.pixels for p in kept),
                   factor_pixels=sum(p.factor_pixels for p in kept))

    def covariance(self) -> torch.Tensor:
        """The shared parameters' covariance, the shots' own parameters free and the amplitudes
        held: the dataset's covariance factor times the inverse of :attr:`matrix` (undamped;
        inf where it is singular).

        Returns
        -------
        tensor (Q, Q) of float64
        """
        try:
            return self.factor_pixels / self.pixels * torch.linalg.inv(self.matrix)
        except RuntimeError:
            return torch.full_like(self.matrix, math.inf)


@dataclass
class ShotBlocks:
    """One shot's linearisation in its own parameters and the shared ones (:func:`shot_blocks`).

    Attributes
    ----------
    refined : list of int
        Positions in :data:`~nanobrag_torch.refine.shot_work.SHOT_PARAMETERS` of its own
        parameters.
    own, lower, upper : tensor (p,) of float64
        Their values and bounds.
    A, B, C : tensor (p, p), (p, Q), (Q, Q) of float64
        The Fisher-scoring matrix's blocks.
    g_own, g_shared : tensor (p,), (Q,) of float64
        The gradient's.
    loss : float
        The shot's loss.
    pixels : int
        Its pixels compared.
    factor : float
        Its covariance factor.
    """

    refined: List[int]
    own: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    g_own: torch.Tensor
    g_shared: torch.Tensor
    loss: float
    pixels: int
    factor: float

    def _damped_own(self, damping: float) -> torch.Tensor:
        return self.A + damping * torch.diag(torch.diag(self.A))

    def reduced(self, damping: float) -> SharedTerms:
        """The shared parameters' terms with the shot's own eliminated, every diagonal
        element of the Fisher matrix ``1 + damping`` times its own.

        Parameters
        ----------
        damping : float
            The Levenberg–Marquardt damping.

        Returns
        -------
        SharedTerms
        """
        solved = solve_linear(self._damped_own(damping), torch.cat([self.B, self.g_own[:, None]], dim=1))
        matrix = self.C + damping * torch.diag(torch.diag(self.C)) - self.B.T @ solved[:, :-1]
        gradient = self.g_shared - self.B.T @ solved[:, -1]
        return SharedTerms(loss=self.loss, gradient=gradient, matrix=matrix, pixels=self.pixels,
                           factor_pixels=self.factor * self.pixels)

    def own_step(self, damping: float, shared_step: torch.Tensor) -> torch.Tensor:
        """The shot's own parameters after the step that goes with ``shared_step``, in their
        bounds.

        Parameters
        ----------
        damping : float
            The damping the shared step was solved with.
        shared_step : tensor (Q,)
            The step of the shared parameters.

        Returns
        -------
        tensor (p,)
        """
        step = -solve_linear(self._damped_own(damping), self.g_own + self.B @ shared_step)
        return torch.minimum(torch.maximum(self.own + step, self.lower), self.upper)


def shot_blocks(work: ShotWork, table: StructureFactors, likelihood: Likelihood, dtype: torch.dtype,
                shared: Sequence[Parameter], shared_values: torch.Tensor) -> Optional[ShotBlocks]:
    """A shot's loss, Fisher matrix and gradient in its own parameters and the shared ones.

    A shared parameter the shot's pixels do not depend on (a panel it has no spots on) has zero
    rows and columns here; the other shots determine it.

    Parameters
    ----------
    work : ShotWork
        The shot.
    table : StructureFactors
        The amplitudes.
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.
    dtype : torch.dtype
        Of the simulation.
    shared : sequence of Parameter
        The shared parameters.
    shared_values : tensor (Q,) of float64
        Their values.

    Returns
    -------
    ShotBlocks or None
        None for a shot left out (a status other than ``"ok"``).
    """
    if work.status != "ok":
        return None
    refined = refined_positions(work)
    model, parameters = shot_model(work, table, dtype, refined, shared)
    own = work.values[refined]
    expected, jacobian = model.expected_and_jacobian(torch.cat([own, shared_values]), work.pixels)
    gradient = jacobian.T @ likelihood.gradient(expected, work.observed)
    matrix = jacobian.T @ (likelihood.fisher_weights(expected)[:, None] * jacobian)
    p = own.numel()
    return ShotBlocks(refined=refined, own=own,
                      lower=torch.tensor([q.lower for q in parameters[:p]], dtype=torch.float64),
                      upper=torch.tensor([q.upper for q in parameters[:p]], dtype=torch.float64),
                      A=matrix[:p, :p], B=matrix[:p, p:], C=matrix[p:, p:], g_own=gradient[:p],
                      g_shared=gradient[p:], loss=float(likelihood.loss(expected, work.observed)),
                      pixels=int(work.pixels.numel()),
                      factor=likelihood.covariance_factor(expected, work.observed, len(shared)))


def step_loss(work: ShotWork, blocks: Optional[ShotBlocks], table: StructureFactors, likelihood: Likelihood,
              dtype: torch.dtype, shared: Sequence[Parameter], shared_values: torch.Tensor, damping: float,
              shared_step: torch.Tensor) -> float:
    """A shot's loss after a step of the shared parameters and its own step that goes with it.

    Parameters
    ----------
    work : ShotWork
        The shot.
    blocks : ShotBlocks or None
        Its linearisation at ``shared_values`` (None for a shot left out: loss 0).
    table, likelihood, dtype, shared
        As for :func:`shot_blocks`.
    shared_values : tensor (Q,)
        The shared parameters before the step.
    damping : float
        The damping the step was solved with.
    shared_step : tensor (Q,)
        The step.

    Returns
    -------
    float
    """
    if blocks is None:
        return 0.0
    model, _ = shot_model(work, table, dtype, blocks.refined, shared)
    x = torch.cat([blocks.own_step(damping, shared_step), shared_values + shared_step])
    return float(likelihood.loss(model.expected(x, work.pixels), work.observed))


def with_step(work: ShotWork, blocks: Optional[ShotBlocks], shared: Sequence[Parameter],
              shared_values: torch.Tensor, damping: float, shared_step: torch.Tensor) -> ShotWork:
    """The shot after a kept step: its own parameters moved with it, the shared parameters'
    new values set in its configurations.

    Parameters
    ----------
    work : ShotWork
        The shot.
    blocks : ShotBlocks or None
        Its linearisation before the step (None for a shot left out: only its configurations
        change).
    shared : sequence of Parameter
        The shared parameters.
    shared_values : tensor (Q,)
        Their values before the step.
    damping : float
        The damping the step was solved with.
    shared_step : tensor (Q,)
        The step.

    Returns
    -------
    ShotWork
    """
    values = work.values.clone()
    if blocks is not None:
        values[blocks.refined] = blocks.own_step(damping, shared_step)
    return with_shared(dataclasses.replace(work, values=values), shared, shared_values + shared_step)


def with_shared(work: ShotWork, shared: Sequence[Parameter], shared_values: torch.Tensor) -> ShotWork:
    """The shot with the shared parameters' values set in its configurations.

    Parameters
    ----------
    work : ShotWork
        The shot.
    shared : sequence of Parameter
        The shared parameters.
    shared_values : tensor (Q,)
        Their values.

    Returns
    -------
    ShotWork
    """
    crystal, detector, beam = configs_with(work.configs, shared, shared_values.tolist())
    return dataclasses.replace(work, configs={"crystal": crystal, "detector": detector, "beam": beam})


def shared_parameters(names: Sequence[str], shots: Sequence) -> Tuple[List[Parameter], torch.Tensor]:
    """The shared parameters named, started at the value every shot gives them.

    Parameters
    ----------
    names : sequence of str
        Parameter names (:func:`~nanobrag_torch.refine.parameters.parse_parameters`) of the
        detector, the crystal or the beam, but not the crystal's orientation (a shot's own).
    shots : sequence of Shot
        The dataset.

    Returns
    -------
    parameters : list of Parameter
    start : tensor (Q,) of float64

    Raises
    ------
    ValueError
        A name of a shot's own parameter (orientation, scale, background), or of a field the
        shots give different values (the error names the first such shot).
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        return [], torch.zeros(0, dtype=torch.float64)
    factors = [name for name in names if name in IMAGE_FACTORS]
    parameters, start = ([], None) if factors else parameters_at(names, _configs(shots[0]))
    own = factors + [p.name for p in parameters if p.is_orientation]
    if own:
        raise ValueError(f"refine_dataset: shared={names!r}: {own} are each shot's own parameters (per_shot)")
    for index, shot in enumerate(shots[1:], start=1):
        _, values = parameters_at(names, _configs(shot))
        differ = (values != start).nonzero().reshape(-1)
        if differ.numel():
            k = int(differ[0])
            raise ValueError(f"refine_dataset: shared parameter {names[k]!r} is {float(start[k])!r} on shot 0 but "
                             f"{float(values[k])!r} on shot {index} ({shot.name!r}); a shared parameter starts "
                             f"from the one value every shot gives it")
    return parameters, start


def _configs(shot) -> dict:
    return {"crystal": shot.crystal, "detector": shot.detector, "beam": shot.beam}


def shared_step(runner, reflections, values: torch.Tensor, shared: Sequence[Parameter],
                shared_values: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Levenberg–Marquardt on the shared parameters and every shot's own, the amplitudes held:
    at most :data:`SHARED_ITERATIONS` steps, each kept (and set in every shot) only if it lowers
    the loss of all the shots together.

    Parameters
    ----------
    runner : LocalRunner or DaskRunner
        The shots (:mod:`nanobrag_torch.refine.runners`), after their geometry steps.
    reflections : ReflectionSet
        The refined reflections.
    values : tensor (n_parameters,)
        Their amplitudes.
    shared : sequence of Parameter
        The shared parameters.
    shared_values : tensor (Q,) of float64
        Their current values.

    Returns
    -------
    values : tensor (Q,)
        The new values (the current ones when no step lowers the loss, or no shot is refined).
    stderr : tensor (Q,)
        Their standard errors, the shots' own parameters free and the amplitudes held (NaN when
        no shot is refined).
    change : float
        How far the values moved, in standard errors (the largest over the parameters).
    """
    start = shared_values
    lower = torch.tensor([p.lower for p in shared], dtype=torch.float64)
    upper = torch.tensor([p.upper for p in shared], dtype=torch.float64)
    damping = FIRST_DAMPING
    dampings = [damping * 10 ** k for k in range(DAMPING_TRIES)]
    tries = runner.shared_terms(reflections, values, shared, shared_values, [0.0] + dampings)
    if tries is None:
        return shared_values, torch.full_like(shared_values, math.nan), 0.0
    for _ in range(SHARED_ITERATIONS):
        stderr = torch.sqrt(torch.diag(tries[0].covariance()).clamp(min=0))
        kept = _kept_step(runner, reflections, values, shared, shared_values, dampings, tries[1:], lower, upper,
                          stderr)
        if kept is None:
            break
        damping, step = kept
        runner.take_step(shared, shared_values, damping, step)
        shared_values = shared_values + step
        damping = max(damping / 10, MIN_DAMPING)
        dampings = [damping * 10 ** k for k in range(DAMPING_TRIES)]
        tries = runner.shared_terms(reflections, values, shared, shared_values, [0.0] + dampings)
    stderr = torch.sqrt(torch.diag(tries[0].covariance()).clamp(min=0))
    return shared_values, stderr, float(((shared_values - start).abs() / stderr).max())


def _kept_step(runner, reflections, values: torch.Tensor, shared: Sequence[Parameter], shared_values: torch.Tensor,
               dampings: Sequence[float], tries: Sequence[SharedTerms], lower: torch.Tensor, upper: torch.Tensor,
               stderr: torch.Tensor) -> Optional[Tuple[float, torch.Tensor]]:
    """The first try, the damping growing, whose step lowers the loss, with its damping; None
    when a try's step is below :data:`~nanobrag_torch.refine.solver.STEP_TOLERANCE_SIGMA`
    standard errors before one does (converged: no loss pass is spent on it), or none does
    (the precision of the simulation)."""
    for damping, terms in zip(dampings, tries):
        step = solve_linear(terms.matrix, -terms.gradient)
        step = torch.minimum(torch.maximum(shared_values + step, lower), upper) - shared_values
        if not torch.isfinite(step).all():
            continue
        if bool((step.abs() <= STEP_TOLERANCE_SIGMA * stderr).all()):
            return None
        loss = runner.step_loss(reflections, values, shared, shared_values, damping, step)
        if math.isfinite(loss) and loss < terms.loss:
            return damping, step
    return None
