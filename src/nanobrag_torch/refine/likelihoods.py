"""Likelihoods of an observed image given the expected photon counts.

Each likelihood gives what the refinement needs: a loss ``L`` (twice the negative
log-likelihood up to a constant, or the sum of squares), its derivative with respect to the
expected counts, the expected second derivative ``w`` (so that ``Jᵀ diag(w) J`` is the
Gauss–Newton / Fisher-scoring matrix of ``L``, with ``J`` the Jacobian of the expected counts),
and the factor that turns ``(Jᵀ diag(w) J)⁻¹`` into the covariance of the estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

from .._docs import fill_doc

DEFAULT_FLOOR_PHOTONS = 1e-6
"""Smallest expected count a pixel is given: a photon counted where the model expects none
costs ``-log(1e-6) ≈ 14`` instead of an infinite penalty."""


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


Likelihood = Union[Poisson, Gaussian, MeanSquaredError]
LIKELIHOODS = {"poisson": Poisson, "gaussian": Gaussian, "mse": MeanSquaredError}


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
