"""Pictures of detector images: the one way the gallery shows them.

**Orientation.** Element ``[s, f]`` of an image (slow index ``s``, fast index ``f``, the
layout :meth:`Simulator.run() <nanobrag_torch.simulator.Simulator.run>` returns) is drawn at
row ``s`` counted from the top and column ``f`` counted from the left: the fast axis runs to
the right and the slow axis runs down (matplotlib's ``origin="upper"``), the order in which
the pixels are stored and read out. Pixel centres are at integer coordinates, so pixel
(f, s) covers ``f ± ½`` and ``s ± ½`` on the axes. This is how the image looks from the
sample when the convention's fast × slow points along the beam (MOSFLM, DENZO, XDS, DIALS);
an ADXV frame is the mirror image.

**Colour scale.** Photon counts on a logarithmic scale over the top ``decades`` decades
(4 by default). The top of the scale is the ``percentile``-th percentile (99.9 by default)
of the positive pixels, so that a handful of very bright pixels do not make every spot
look faint: pixels above it saturate, pixels below the bottom (zeros included) take the
lowest colour. Pass ``vmax`` to put several images on the same scale. Integer photon
counts (a measured or a noise image) get a scale of their own, :func:`count_color_scale`:
from half a photon, so that a pixel that counted one photon is lit, to the largest count. Residuals use a
diverging map symmetric about zero, its limit the 99th percentile of ``|residual|``.

matplotlib is imported inside the functions that draw, so ``import nanobrag_torch`` never
needs it; :func:`color_limits` needs only NumPy.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

DECADES = 4.0
"""Decades of photon counts the logarithmic colour scale spans."""

PERCENTILE = 99.9
"""Percentile of the positive pixels that sets the top of the colour scale."""

COUNT_FLOOR = 0.5
"""Bottom of the colour scale of photon counts: below one photon, so that one count shows."""
RESIDUAL_PERCENTILE = 99.0
"""Percentile of ``|residual|`` that sets the limits of the residual scale."""

IMAGE_CMAP = "magma"
RESIDUAL_CMAP = "RdBu_r"


def _as_image(image: Any) -> np.ndarray:
    """A 2-D float NumPy array from a tensor (any device, with or without grad) or array."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"a detector image must be 2-D (slow, fast), got an array of shape {array.shape}")
    return array


def _crop(array: np.ndarray, region: Optional[Tuple[slice, slice]]):
    """The shown part of the image and its extent in detector-pixel coordinates."""
    if region is None:
        slow0, fast0, shown = 0, 0, array
    else:
        if len(region) != 2 or not all(isinstance(part, slice) for part in region):
            raise ValueError(f"region must be a pair of slices (slow, fast), got {region!r}")
        shown = array[region[0], region[1]]
        slow0 = region[0].indices(array.shape[0])[0]
        fast0 = region[1].indices(array.shape[1])[0]
    rows, columns = shown.shape
    # (left, right, bottom, top) with origin="upper": row 0 at the top
    extent = (fast0 - 0.5, fast0 + columns - 0.5, slow0 + rows - 0.5, slow0 - 0.5)
    return shown, extent


def color_limits(image: Any, *, decades: float = DECADES, percentile: float = PERCENTILE,
                 vmax: Optional[float] = None) -> Tuple[float, float]:
    """The limits of the logarithmic colour scale of a detector image.

    Parameters
    ----------
    image : array or tensor (slow, fast)
        Photons per pixel.
    decades : float
        Decades below the top that the scale spans.
    percentile : float
        Percentile (0–100) of the positive pixels that sets the top.
    vmax : float, optional
        The top, given instead of taken from the image (to share a scale between images).

    Returns
    -------
    vmin, vmax : float
        ``vmax / 10**decades`` and ``vmax``, in photons per pixel. An image without positive
        pixels gets ``vmax = 1``.

    Raises
    ------
    ValueError
        The image is not 2-D, or the given ``vmax`` is not > 0.
    """
    if vmax is None:
        values = _as_image(image)
        positive = values[values > 0]
        vmax = float(np.percentile(positive, percentile)) if positive.size else 1.0
    if not vmax > 0:
        raise ValueError(f"vmax = {vmax!r} is invalid: the top of a logarithmic scale must be > 0")
    return vmax / 10.0 ** decades, float(vmax)


def count_color_scale(*images: Any, label: str = "photons counted") -> dict:
    """The colour scale of integer photon counts, as keywords of :func:`show_detector_image`.

    A logarithmic scale from ``COUNT_FLOOR`` (half a photon) to the largest count of the
    images, so that every counted pixel is lit and only the brightest one saturates (the
    default scale, four decades below a percentile, suits expected photons, not counts).

    Parameters
    ----------
    *images : array or tensor (slow, fast)
        Photon counts per pixel; give several to put them on one scale.
    label : str
        Label of the colour bar.

    Returns
    -------
    dict
        ``vmax`` (photons, at least 1), ``decades`` and ``label``: pass them as
        ``show_detector_image(counts, ax, **count_color_scale(counts))``.

    Raises
    ------
    ValueError
        No image was given, or one is not 2-D.
    """
    if not images:
        raise ValueError("count_color_scale needs at least one image of counts")
    top = max(1.0, *(float(_as_image(image).max()) for image in images))
    return {"vmax": top, "decades": float(np.log10(top / COUNT_FLOOR)), "label": label}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _label_axes(ax, title: Optional[str]) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("fast pixel")
    ax.set_ylabel("slow pixel")
    for axis in (ax.xaxis, ax.yaxis):  # pixel numbers are integers
        axis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
    if title is not None:
        ax.set_title(title)


def show_detector_image(image: Any, ax=None, *, title: Optional[str] = None,
                        region: Optional[Tuple[slice, slice]] = None, log: bool = True,
                        decades: float = DECADES, percentile: float = PERCENTILE,
                        vmax: Optional[float] = None, cmap: str = IMAGE_CMAP, colorbar: bool = True,
                        label: str = "photons per pixel"):
    """Show a detector image: fast axis to the right, slow axis down, logarithmic colours.

    Parameters
    ----------
    image : array or tensor (slow, fast)
        Photons per pixel, as :meth:`Simulator.run() <nanobrag_torch.simulator.Simulator.run>`
        returns them (any device; gradients are ignored).
    ax : matplotlib.axes.Axes, optional
        Where to draw. Default: a new figure.
    title : str, optional
        Title of the axes. Default: none.
    region : pair of slices (slow, fast), optional
        Show only ``image[region]``; the axes keep the detector's pixel numbers.
    log : bool
        Logarithmic colour scale over ``decades`` decades (default); ``False`` gives a linear
        scale from 0 to the top.
    decades : float
        Decades the logarithmic scale spans below its top.
    percentile : float
        Percentile of the shown positive pixels that sets the top of the scale.
    vmax : float, optional
        Top of the scale in photons per pixel, instead of the percentile: give several
        images the same ``vmax`` to compare them.
    cmap : str
        Colour map.
    colorbar : bool
        Add a colour bar labelled ``label``.
    label : str
        Label of the colour bar.

    Returns
    -------
    matplotlib.image.AxesImage
        The image artist; ``artist.set_data(new_image)`` redraws another image (of the
        same shape) on the same scale, as an animation does.

    Raises
    ------
    ValueError
        The image is not 2-D, ``region`` is not a pair of slices, or ``vmax`` is not > 0.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    shown, extent = _crop(_as_image(image), region)
    vmin, top = color_limits(shown, decades=decades, percentile=percentile, vmax=vmax)
    colors = plt.get_cmap(cmap)
    colors = colors.with_extremes(bad=colors(0.0), under=colors(0.0))
    norm = LogNorm(vmin=vmin, vmax=top) if log else Normalize(vmin=0.0, vmax=top)
    ax = _axes(ax)
    artist = ax.imshow(shown, cmap=colors, norm=norm, origin="upper", extent=extent)
    _label_axes(ax, title)
    if colorbar:
        ax.figure.colorbar(artist, ax=ax, label=label, extend="both" if log else "max")
    return artist


def show_residual(residual: Any, ax=None, *, title: Optional[str] = None,
                  region: Optional[Tuple[slice, slice]] = None, scale: Optional[float] = None,
                  percentile: float = RESIDUAL_PERCENTILE, cmap: str = RESIDUAL_CMAP, colorbar: bool = True,
                  label: str = "photons per pixel"):
    """Show a signed image (a residual, a difference) in the orientation of :func:`show_detector_image`.

    Parameters
    ----------
    residual : array or tensor (slow, fast)
        For example ``model − measured``, in photons per pixel.
    ax : matplotlib.axes.Axes, optional
        Where to draw. Default: a new figure.
    title : str, optional
        Title of the axes. Default: none.
    region : pair of slices (slow, fast), optional
        Show only ``residual[region]``, with the detector's pixel numbers on the axes.
    scale : float, optional
        The colour limits are ``±scale``. Default: the ``percentile``-th percentile of
        ``|residual|`` (give the same scale to compare residuals).
    percentile : float
        Percentile of ``|residual|`` that sets the default scale.
    cmap : str
        Diverging colour map; zero is its middle.
    colorbar : bool
        Add a colour bar labelled ``label``.
    label : str
        Label of the colour bar.

    Returns
    -------
    matplotlib.image.AxesImage
        The image artist.

    Raises
    ------
    ValueError
        The residual is not 2-D, or ``region`` is not a pair of slices.
    """
    shown, extent = _crop(_as_image(residual), region)
    if scale is None:
        scale = float(np.percentile(np.abs(shown), percentile))
        scale = scale if scale > 0 else 1.0
    ax = _axes(ax)
    artist = ax.imshow(shown, cmap=cmap, vmin=-scale, vmax=scale, origin="upper", extent=extent)
    _label_axes(ax, title)
    if colorbar:
        ax.figure.colorbar(artist, ax=ax, label=label, extend="both")
    return artist
