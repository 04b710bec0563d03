"""Likelihoods of an observed image given the expected photon counts.

Each likelihood gives what the refinement needs: a loss ``L`` (twice the negative
log-likelihood up to a constant, or the sum of squares), its derivative with respect to the
expected counts, the expected second derivative ``w`` (so that ``Jᵀ diag(w) J`` is the
Gauss–Newton / Fisher-scoring matrix of ``L``, with ``J`` the Jacobian of the expected counts),
and the factor that turns ``(Jᵀ diag(w) J)⁻¹`` into the covariance of the estimates; and a
goodness of fit at the estimates, a figure ≈ 1 when the model fits to within the noise it
assumes, with :func:`~nanobrag_torch.refine.likelihoods.misfit_warning` when it clearly does not.

A noise-free image (the expected counts themselves) fitted by the right model gives a figure
near 0, not 1: the figures measure the misfit in units of the photon noise that the model's
counts would have, so a wrong model (a wrong detector pivot, background or structure
factors) is flagged on a noise-free image as on a noisy one.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Tuple, Union

import torch

from .._docs import fill_doc

DEFAULT_FLOOR_PHOTONS = 1e-6
"""Smallest expected count a pixel is given: a photon counted where the model expects none
costs ``-log(1e-6) ≈ 14`` instead of an infinite penalty."""

EXACT_DEVIANCE_BELOW = 100.0
"""Up to this expected count the mean and variance of a pixel's Poisson deviance are sums over
the counts 0 … ``DEVIANCE_TERMS`` − 1 (the probability beyond is below 1e-30); above, the
series ``1 + 1/(6μ) + 1/(6μ²)`` and ``2 + 2/(3μ)`` (relative errors below 1e-6 and 1e-4 at 100)."""

DEVIANCE_TERMS = 256
"""Counts summed over for the exact moments of the deviance (μ + 15 √μ + 6 at μ = 100)."""

MISFIT_SIGMAS = 10.0
"""A fit is flagged when its statistic exceeds its expectation by this many standard
deviations: by Cantelli's inequality a model that fits does so with probability at most
1/(1 + 10²) < 1 %, whatever the distribution of the statistic (it is skewed for faint pixels)."""

MISFIT_RATIO = 1.5
"""... and when the figure exceeds this: a misfit worth naming, not a statistically
significant trifle on a million pixels."""


@dataclass(frozen=True)
class Poisson:
    """Photon counting: ``n ~ Poisson(μ)``, the exact likelihood of a counting detector.

    Parameters
    ----------
    floor_photons : float
        Added to every expected count, so that ``log μ`` stays finite.
    """

    floor_photons: float = DEFAULT_FLOOR_PHOTONS
    name = "poisson"

    def _mu(self, expected: torch.Tensor) -> torch.Tensor:
        return expected + self.floor_photons

    @fill_doc
    def loss(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """The deviance ``2 Σ μ − n + n log(n/μ)``: twice the NLL, shifted to 0 at a perfect fit.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(loss)s
        """
        return self.pixel_losses(expected, observed).sum()

    @fill_doc
    def pixel_losses(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Each pixel's term of :meth:`loss`.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(pixel_losses)s
        """
        mu = self._mu(expected)
        return 2 * (mu - observed + torch.xlogy(observed, observed) - torch.xlogy(observed, mu))

    @fill_doc
    def gradient(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``∂L/∂μ = 2 (1 − n/μ)`` for each pixel.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(gradient)s
        """
        return 2 * (1 - observed / self._mu(expected))

    @fill_doc
    def fisher_weights(self, expected: torch.Tensor) -> torch.Tensor:
        """``E[∂²L/∂μ²] = 2/μ`` for each pixel.

        Parameters
        ----------
        %(expected)s

        Returns
        -------
        %(fisher_weights)s
        """
        return 2 / self._mu(expected)

    @fill_doc
    def covariance_factor(self, expected: torch.Tensor, observed: torch.Tensor, n_parameters: int) -> float:
        """2: the loss is twice the NLL, so the covariance is ``2 (Jᵀ W J)⁻¹``.

        Parameters
        ----------
        %(expected)s
        %(observed)s
        %(n_parameters)s

        Returns
        -------
        %(covariance_factor)s
        """
        return 2.0

    @fill_doc
    def goodness_of_fit(self, expected: torch.Tensor, observed: torch.Tensor) -> Tuple[float, float]:
        """The deviance per pixel over its expectation for Poisson counts of the expected means.

        The expectation ``E[d(k, μ)] = Σₖ P(k | μ) d(k, μ)`` of each pixel's deviance is not 1
        for faint pixels (0.09 at μ = 0.01, 1.15 at μ = 1); it and the variance are summed
        exactly up to ``EXACT_DEVIANCE_BELOW`` photons.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(goodness_of_fit)s
        """
        mu = self._mu(expected.detach().to(torch.float64))
        observed = observed.detach().to(mu)
        deviance = float(2 * (mu - observed + torch.xlogy(observed, observed) - torch.xlogy(observed, mu)).sum())
        mean, variance = poisson_deviance_moments(mu)
        return _figures(deviance, float(mean.sum()), float(variance.sum()))


def poisson_deviance_moments(mu: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the deviance ``d(k, μ) = 2 (μ − k + k log(k/μ))`` of a count
    ``k ~ Poisson(μ)``, for every μ.

    Parameters
    ----------
    mu : tensor
        Expected counts, > 0, float64.

    Returns
    -------
    mean, variance : tensor
        Of ``mu``'s shape.
    """
    flat = mu.reshape(-1)
    mean = 1 + 1 / (6 * flat) + 1 / (6 * flat * flat)
    variance = 2 + 2 / (3 * flat)
    exact = torch.nonzero(flat <= EXACT_DEVIANCE_BELOW)[:, 0]
    k = torch.arange(DEVIANCE_TERMS, dtype=flat.dtype, device=flat.device)
    for chunk in torch.split(exact, 4096):
        m = flat[chunk, None]
        probability = torch.exp(torch.xlogy(k, m) - m - torch.lgamma(k + 1))
        d = 2 * (m - k + torch.xlogy(k, k) - torch.xlogy(k, m))
        first = (probability * d).sum(dim=1)
        mean[chunk] = first
        variance[chunk] = (probability * d * d).sum(dim=1) - first * first
    return mean.reshape(mu.shape), variance.reshape(mu.shape)


def _figures(statistic: float, expectation: float, variance: float) -> Tuple[float, float]:
    """(statistic / expectation, (statistic − expectation) / standard deviation)."""
    ratio = statistic / expectation if expectation > 0 else (math.inf if statistic > 0 else 0.0)
    spread = math.sqrt(variance)
    excess = (statistic - expectation) / spread if spread > 0 else (math.inf if statistic > expectation else 0.0)
    return ratio, excess


@dataclass(frozen=True)
class Gaussian:
    """Counts with readout noise: ``n ~ Normal(μ, μ + σ²)``.

    Parameters
    ----------
    readout_noise_photons : float
        Standard deviation σ of the readout noise, in photons.
    floor_photons : float
        Added to the variance so that it stays positive.
    """

    readout_noise_photons: float = 0.0
    floor_photons: float = DEFAULT_FLOOR_PHOTONS
    name = "gaussian"

    def _variance(self, expected: torch.Tensor) -> torch.Tensor:
        return expected.clamp(min=0) + self.readout_noise_photons ** 2 + self.floor_photons

    @fill_doc
    def loss(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``Σ (n − μ)²/v + log(v)`` with ``v = μ + σ²`` (twice the NLL up to a constant).

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(loss)s
        """
        return self.pixel_losses(expected, observed).sum()

    @fill_doc
    def pixel_losses(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Each pixel's term of :meth:`loss`.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(pixel_losses)s
        """
        variance = self._variance(expected)
        return (observed - expected) ** 2 / variance + torch.log(variance)

    @fill_doc
    def gradient(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``∂L/∂μ``, the variance's dependence on μ included.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(gradient)s
        """
        variance = self._variance(expected)
        residual = observed - expected
        return -2 * residual / variance - residual ** 2 / variance ** 2 + 1 / variance

    @fill_doc
    def fisher_weights(self, expected: torch.Tensor) -> torch.Tensor:
        """``E[∂²L/∂μ²] = 2/v + 1/v²``: the mean carries ``2/v``, the variance ``1/v²``.

        Parameters
        ----------
        %(expected)s

        Returns
        -------
        %(fisher_weights)s
        """
        variance = self._variance(expected)
        return 2 / variance + 1 / variance ** 2

    @fill_doc
    def covariance_factor(self, expected: torch.Tensor, observed: torch.Tensor, n_parameters: int) -> float:
        """2: the loss is twice the NLL.

        Parameters
        ----------
        %(expected)s
        %(observed)s
        %(n_parameters)s

        Returns
        -------
        %(covariance_factor)s
        """
        return 2.0

    @fill_doc
    def goodness_of_fit(self, expected: torch.Tensor, observed: torch.Tensor) -> Tuple[float, float]:
        """The chi-square per pixel ``Σ (n − μ)²/v / N``.

        Its standard deviation is that of Poisson counts plus Gaussian readout noise:
        ``Var[(n − μ)²/v] = 2 + μ/v²`` per pixel.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(goodness_of_fit)s
        """
        expected = expected.detach().to(torch.float64)
        variance = self._variance(expected)
        chi_square = float(((observed.detach().to(expected) - expected) ** 2 / variance).sum())
        return _figures(chi_square, float(expected.numel()),
                        float((2 + expected.clamp(min=0) / variance ** 2).sum()))


@dataclass(frozen=True)
class MeanSquaredError:
    """Least squares ``Σ (n − μ)²``, for noise-free images; the noise level is estimated from the
    residual when the error bars are computed."""

    name = "mse"

    @fill_doc
    def loss(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``Σ (n − μ)²``.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(loss)s
        """
        return self.pixel_losses(expected, observed).sum()

    @fill_doc
    def pixel_losses(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Each pixel's term of :meth:`loss`.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(pixel_losses)s
        """
        return (observed - expected) ** 2

    @fill_doc
    def gradient(self, expected: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``∂L/∂μ = 2 (μ − n)``.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(gradient)s
        """
        return 2 * (expected - observed)

    @fill_doc
    def fisher_weights(self, expected: torch.Tensor) -> torch.Tensor:
        """2 for every pixel.

        Parameters
        ----------
        %(expected)s

        Returns
        -------
        %(fisher_weights)s
        """
        return torch.full_like(expected, 2.0)

    @fill_doc
    def covariance_factor(self, expected: torch.Tensor, observed: torch.Tensor, n_parameters: int) -> float:
        """``2 σ̂²`` with ``σ̂² = RSS / (pixels − parameters)``.

        Parameters
        ----------
        %(expected)s
        %(observed)s
        %(n_parameters)s

        Returns
        -------
        %(covariance_factor)s
        """
        dof = max(observed.numel() - n_parameters, 1)
        return 2.0 * float(((observed - expected) ** 2).sum()) / dof

    @fill_doc
    def goodness_of_fit(self, expected: torch.Tensor, observed: torch.Tensor) -> Tuple[float, float]:
        """The mean squared residual over the mean expected count: ``Σ (n − μ)² / Σ μ``.

        Least squares assumes no noise model; this is the figure of Poisson counts (variance
        μ, ``Var[(n − μ)²] = μ + 2μ²``), so it is ≈ 1 for counts that the model fits and
        meaningful only for an image in photons.

        Parameters
        ----------
        %(expected)s
        %(observed)s

        Returns
        -------
        %(goodness_of_fit)s
        """
        expected = expected.detach().to(torch.float64)
        mu = expected.clamp(min=0) + DEFAULT_FLOOR_PHOTONS
        squares = float(((observed.detach().to(expected) - expected) ** 2).sum())
        return _figures(squares, float(mu.sum()), float((mu + 2 * mu * mu).sum()))


Likelihood = Union[Poisson, Gaussian, MeanSquaredError]
LIKELIHOODS = {"poisson": Poisson, "gaussian": Gaussian, "mse": MeanSquaredError}


GOODNESS_OF_FIT_FIGURES = {"poisson": "the deviance per pixel over its expectation",
                           "gaussian": "the chi-square per pixel",
                           "mse": "the mean squared residual over the mean expected count"}
"""What ``Poisson.goodness_of_fit`` and its siblings return, in words."""


def misfit_warning(likelihood: Likelihood, ratio: float, excess_sigmas: float) -> str:
    """A sentence starting with "Warning:" when the fit is clearly worse than the noise allows
    (more than ``MISFIT_SIGMAS`` standard deviations above the expectation and a figure
    above ``MISFIT_RATIO``), naming the figure and the usual causes; else nothing.

    Parameters
    ----------
    likelihood : Poisson or Gaussian or MeanSquaredError
        The likelihood whose ``goodness_of_fit`` gave the figures.
    ratio, excess_sigmas : float
        Its figures.

    Returns
    -------
    str
        ``". Warning: ..."``, or ``""``.
    """
    if not (ratio > MISFIT_RATIO and excess_sigmas > MISFIT_SIGMAS):
        return ""
    return (f". Warning: the model does not fit the image: the goodness of fit "
            f"({GOODNESS_OF_FIT_FIGURES[likelihood.name]}) is {ratio:.3g}, {excess_sigmas:.3g} standard deviations "
            f"above its expectation (1 for a model that fits); usual causes: the detector geometry (the pivot convention, a pix0 "
            f"vector against the beam centre, the distance), a wrong background, wrong structure factors")


def as_likelihood(spec: Union[str, Likelihood]) -> Likelihood:
    """A likelihood from its name (``"poisson"``, ``"gaussian"``, ``"mse"``) or an instance.

    Parameters
    ----------
    spec : str or Poisson or Gaussian or MeanSquaredError
        The name (with the default parameters), or a likelihood object, returned as it is.

    Returns
    -------
    Poisson or Gaussian or MeanSquaredError

    Raises
    ------
    ValueError
        Neither a known name nor a likelihood object.
    """
    if isinstance(spec, (Poisson, Gaussian, MeanSquaredError)):
        return spec
    if isinstance(spec, str) and spec in LIKELIHOODS:
        return LIKELIHOODS[spec]()
    raise ValueError(f"likelihood = {spec!r} is not one of {sorted(LIKELIHOODS)} nor a likelihood object "
                     f"(Poisson, Gaussian, MeanSquaredError)")
