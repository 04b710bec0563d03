"""What a refinement returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch


@dataclass
class RefinementResult:
    """The outcome of :func:`nanobrag_torch.refine.refine`.

    Attributes
    ----------
    names : list of str
        The refined parameters, in the order of ``covariance``.
    values : dict of str to float
        Estimates.
    stderr : dict of str to float
        Standard errors: square roots of the diagonal of ``covariance``.
    covariance : tensor (P, P), float64
        Inverse Fisher information of the likelihood at the estimates (for ``"mse"``, scaled by
        the residual variance).
    history : list of dict
        One entry per step: ``{"iteration", "stage", "loss", "values", "pixels"}``: the stage
        (``"start"``, ``"orientation search"``, ``"spot positions"``, ``"spread scan"``,
        ``"local"``), the loss over
        that many pixels near the spots, and the parameters' values.
    converged : bool
        Whether the last stage met its convergence test.
    message : str
        How the refinement ended.
    evaluations : int
        Simulator runs used (a forward-mode pass for one Jacobian column counts as one).
    pixels : int
        Pixels the final stage evaluated.
    pixel_indices : tensor (pixels,) of int64, optional
        Their flat indices (:class:`~nanobrag_torch.layout.PixelLayout`; ``Detector(config).layout.coordinates``
        gives their panel, slow and fast coordinates), sorted, on the CPU.
    goodness_of_fit : float
        Over those pixels at the estimates: for ``"poisson"`` the deviance per pixel over its
        expectation for Poisson counts of the fitted means, for ``"gaussian"`` the chi-square
        per pixel, for ``"mse"`` the mean squared residual over the mean expected count (the
        Poisson variance). About 1 for a model that fits noisy counts, near 0 for one that
        fits a noise-free image; far above 1 for a model that does not fit, which ``message``
        then says in a sentence starting with "Warning:". NaN when not computed.
    """

    names: List[str]
    values: Dict[str, float]
    stderr: Dict[str, float]
    covariance: torch.Tensor
    history: List[Dict[str, object]] = field(default_factory=list)
    converged: bool = False
    message: str = ""
    evaluations: int = 0
    pixels: int = 0
    pixel_indices: Optional[torch.Tensor] = None
    goodness_of_fit: float = math.nan

    @property
    def correlation(self) -> torch.Tensor:
        """Correlation matrix of the estimates, (P, P)."""
        scale = torch.sqrt(torch.diag(self.covariance))
        return self.covariance / (scale[:, None] * scale[None, :])

    def summary(self) -> str:
        """A table of estimates and standard errors.

        Returns
        -------
        str
            One line per parameter (name, estimate, standard error), then the solver's message
            with the numbers of evaluations and pixels, and the goodness of fit.
        """
        width = max(len(name) for name in self.names)
        lines = [f"{'parameter':<{width}}  {'estimate':>14}  {'std. error':>11}"]
        for name in self.names:
            lines.append(f"{name:<{width}}  {self.values[name]:>14.6g}  {self.stderr[name]:>11.3g}")
        lines.append(f"{self.message} ({self.evaluations} simulator evaluations, {self.pixels} pixels)")
        lines.append(f"goodness of fit {self.goodness_of_fit:.3g} (1 for a model that fits the noise)")
        return "\n".join(lines)
