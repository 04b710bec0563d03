"""nanoBragg C's documented quirks, in one place.

The library computes the intended physics. The ``nanobragg`` command reproduces C's images,
quirks included, by building its :class:`~nanobrag_torch.simulator.Simulator` with
``c_quirks=True``; that switch is stored once, in the prepared run
(:attr:`nanobrag_torch.prepared.RenderOptions.c_quirks`), and every quirk is written here:

* **phi carry-over** (:func:`phi_carry_over`): a phi step whose angle is exactly 0 reuses the
  rotation of the evaluation before it;
* **compounding** (:func:`accumulate`): with ``oversample_omega``, ``_polar`` or ``_thick``
  the whole running sum is multiplied by the flagged factors after every term, and the
  capture fraction of the last sensor layer alone multiplies the rest;
* **water scaled twice** (:func:`water_background`): the water background is multiplied by
  ``r_e² · fluence`` before the image's own scale;
* **interpolation switch-off** (:func:`interpolation_shutoff`): tricubic interpolation is off
  for the rest of the image after the first out-of-range lookup.

The Physics model page of the documentation explains each one.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ._docs import fill_doc
from .constants import R_E_SQR_M2, WATER_F


def phi_carry_over(angles_rad: torch.Tensor) -> torch.Tensor:
    """C's phi angles: a step whose angle is exactly 0 takes the angle of the step before it,
    and for ``phi_start = 0`` with several steps step 0 takes the last step's (C's very first
    pixel evaluation is the only exception; it is not reproduced).

    Parameters
    ----------
    angles_rad : tensor (phi_steps,)
        The intended spindle angles.

    Returns
    -------
    tensor (phi_steps,)
        The angles C rotates by (a gather, so gradients flow to the steps reused).
    """
    values = angles_rad.detach().tolist()
    nonzero = [k for k, value in enumerate(values) if value != 0.0]
    if not nonzero or len(nonzero) == len(values):
        return angles_rad
    source, previous = [], nonzero[-1]
    for k, value in enumerate(values):
        if value != 0.0:
            previous = k
        source.append(previous)
    return angles_rad[torch.tensor(source, device=angles_rad.device)]


def water_background(molecules: float, fluence: torch.Tensor) -> torch.Tensor:
    """C's water background in the units of the unscaled sum: ``F_water² · molecules ·
    r_e² · fluence`` (scaled by ``r_e² · fluence`` here and again with the image, and divided
    by the steps).

    Parameters
    ----------
    molecules : float
        Water molecules in the beam.
    fluence : tensor ()
        Photons per m².

    Returns
    -------
    tensor ()
        The background, to be added to the unscaled sum of every pixel.
    """
    return WATER_F ** 2 * R_E_SQR_M2 * fluence * molecules


def interpolation_shutoff(valid: torch.Tensor, switched_off: bool) -> Tuple[torch.Tensor, bool]:
    """C turns interpolation off for the rest of the run at the first out-of-range lookup, in
    traversal order (the order of ``valid``'s elements).

    Parameters
    ----------
    valid : tensor of bool
        Where interpolation would be allowed, in traversal order.
    switched_off : bool
        Whether an earlier lookup of the run already switched it off.

    Returns
    -------
    still_valid : tensor of bool
        The lookups still interpolated.
    switched_off : bool
        Whether the switch-off has happened by the end of ``valid``.
    """
    if switched_off:
        return torch.zeros_like(valid), True
    flat = valid.reshape(-1)
    invalid = (~flat).nonzero()
    if invalid.numel() == 0:
        return valid, False
    order = torch.arange(flat.numel(), device=flat.device)
    return (flat & (order < int(invalid[0]))).reshape(valid.shape), True


@fill_doc
def accumulate(term: torch.Tensor, f_latt: Optional[torch.Tensor], kept: Optional[torch.Tensor],
               omega: torch.Tensor, polar: torch.Tensor, capture: torch.Tensor, first_polar: torch.Tensor,
               background: torch.Tensor, options) -> torch.Tensor:
    """nanoBragg C's accumulation of one chunk, quirks included.

    With an ``oversample_*`` flag, the whole running sum (water background included) is
    multiplied by the flagged factors after every term that is not skipped (the factors
    compound); the other factors multiply at the end, the capture fraction of the last layer
    only.

    Parameters
    ----------
    term : tensor (P, T, S, K, O)
        ``F_cell² F_latt²`` of every pixel, layer, sub-pixel, source and orientation (O is 1 when
        the fused kernel summed the orientations).
    f_latt : tensor (P, T, S, K, O) or None
        The lattice factors (None from the fused kernel).
    kept : tensor (P, T, S, K) or None
        1 where the resolution cut keeps a source, 0 where it skips it; None without a cut.
    omega, capture : tensor (P, T, S)
        Solid angle and capture fraction.
    polar : tensor (P, T, S, K)
        Polarization factors.
    first_polar : tensor (P,)
        The polarization factor C applies once per pixel.
    background : tensor ()
        The water background (:func:`water_background`), or 0.
    %(c_options)s

    Returns
    -------
    tensor (P,)
        The unscaled intensity of every pixel.
    """
    flagged = options.oversample_omega or options.oversample_polar or options.oversample_thick
    if not flagged:
        total = _sum_all_but_first(term) + background
    else:
        factor = torch.ones_like(term)
        if options.oversample_thick:
            factor = factor * capture[:, :, :, None, None]
        if options.oversample_polar:
            factor = factor * polar[..., None]
        if options.oversample_omega:
            factor = factor * omega[:, :, :, None, None]
        counted = torch.ones_like(term, dtype=torch.bool)
        if not options.water:
            counted = counted & (f_latt != 0)
        if kept is not None:
            counted = counted & (kept[..., None] > 0)
        factor = torch.where(counted, factor, torch.ones_like(factor)).flatten(1)
        suffix = torch.flip(torch.cumprod(torch.flip(factor, [1]), dim=1), [1])
        total = (term.flatten(1) * suffix).sum(-1) + background * suffix[:, 0]
    if not options.oversample_thick:
        total = total * capture[:, -1, 0]
    if not options.oversample_polar:
        total = total * first_polar
    if not options.oversample_omega:
        total = total * omega[:, 0, 0]
    return total


def _sum_all_but_first(x: torch.Tensor) -> torch.Tensor:
    return x.sum(tuple(range(1, x.ndim)))


@fill_doc
def capture_without_thickness(shape, reference: torch.Tensor, options) -> torch.Tensor:
    """The capture fraction of an ideal sensor, [P, T, S]: 1, except C's 0 when
    ``oversample_thick`` is set without a thickness (C then multiplies every term by 0).

    Parameters
    ----------
    shape : torch.Size
        (P, T, S).
    reference : tensor
        Gives the dtype and device.
    %(c_options)s

    Returns
    -------
    tensor (P, T, S)
        1 everywhere, or 0 everywhere for that quirk.
    """
    value = 0.0 if (options.c_quirks and options.oversample_thick) else 1.0
    return torch.full(shape, value, dtype=reference.dtype, device=reference.device)
