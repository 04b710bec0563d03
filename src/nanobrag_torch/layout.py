"""How the pixels of a detector are addressed: ``(panel, slow, fast)``, or one flat index.

A detector is one or more panels; a pixel is named by its panel and its slow and fast pixel
coordinates. Where one number is handier (a set of pixels to render or to compare), the flat
index counts the pixels panel by panel, each panel slow-major:
``flat = offset[panel] + slow · fpixels[panel] + fast``. A single-panel detector is the
one-panel case: its flat index is ``slow · fpixels + fast``, and its images are
``(slow, fast)``; the images of several panels of one size are ``(panels, slow, fast)``.

Regions of interest are clipped to a panel by ``roi_bounds``, the one place that rule is
written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from ._docs import fill_doc

Roi = Tuple[int, int, int, int]
"""``(fmin, fmax, smin, smax)``: inclusive, 0-based pixel bounds along fast and slow."""


@fill_doc
def roi_bounds(roi: Optional[Sequence[int]], fpixels: int, spixels: int) -> Roi:
    """A region of interest clipped to a panel of ``fpixels × spixels`` pixels.

    Parameters
    ----------
    roi : sequence of 4 ints or None
        ``(fmin, fmax, smin, smax)``, inclusive; None for the whole panel.
    %(fpixels_spixels)s

    Returns
    -------
    fmin, fmax, smin, smax : int
        Inclusive and inside the panel; ``fmin > fmax`` (or ``smin > smax``) when the region
        lies wholly outside it.
    """
    if roi is None:
        return 0, fpixels - 1, 0, spixels - 1
    fmin, fmax, smin, smax = (int(bound) for bound in roi)
    return max(fmin, 0), min(fmax, fpixels - 1), max(smin, 0), min(smax, spixels - 1)


@dataclass(frozen=True)
class PixelLayout:
    """The panels of a detector and the flat numbering of their pixels.

    Parameters
    ----------
    panel_shapes : tuple of (int, int)
        ``(spixels, fpixels)`` of every panel, in panel order.

    Raises
    ------
    ValueError
        No panel, or a panel whose shape is not two counts ≥ 1.
    """

    panel_shapes: Tuple[Tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.panel_shapes:
            raise ValueError("PixelLayout: a detector needs at least one panel")
        for panel, shape in enumerate(self.panel_shapes):
            if len(shape) != 2 or any(int(n) < 1 for n in shape):
                raise ValueError(f"PixelLayout: panel {panel} has shape {shape}, not (spixels >= 1, fpixels >= 1)")

    @property
    def panels(self) -> int:
        """Number of panels."""
        return len(self.panel_shapes)

    @property
    def panel_sizes(self) -> Tuple[int, ...]:
        """Pixels of every panel."""
        return tuple(slow * fast for slow, fast in self.panel_shapes)

    @property
    def offsets(self) -> Tuple[int, ...]:
        """Flat index of pixel (0, 0) of every panel."""
        starts, total = [], 0
        for size in self.panel_sizes:
            starts.append(total)
            total += size
        return tuple(starts)

    @property
    def total(self) -> int:
        """Pixels of all panels together."""
        return sum(self.panel_sizes)

    @property
    def image_shape(self) -> Tuple[int, ...]:
        """The shape of a whole image, ``(slow, fast)`` for one panel and ``(panels, slow, fast)``
        for several of one size.

        Raises
        ------
        ValueError
            The panels differ in size: their images are a flat tensor of :attr:`total` pixels
            (or one tensor per panel, :meth:`split`).
        """
        if self.panels == 1:
            return self.panel_shapes[0]
        if len(set(self.panel_shapes)) != 1:
            raise ValueError(f"the panels have different shapes {sorted(set(self.panel_shapes))}: their pixels "
                             f"make no (panels, slow, fast) image; use the flat image or split it by panel")
        return (self.panels,) + self.panel_shapes[0]

    def flat_index(self, panel: torch.Tensor, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        """Flat indices of pixels given by panel, slow and fast coordinates.

        Parameters
        ----------
        panel, slow, fast : tensor of int
            Coordinates of the pixels (broadcast against each other).

        Returns
        -------
        tensor of int64
            ``offset[panel] + slow · fpixels[panel] + fast``.
        """
        panel = torch.as_tensor(panel, dtype=torch.int64)
        offsets = torch.tensor(self.offsets, dtype=torch.int64, device=panel.device)
        widths = torch.tensor([fast for _, fast in self.panel_shapes], dtype=torch.int64, device=panel.device)
        return offsets[panel] + torch.as_tensor(slow, dtype=torch.int64) * widths[panel] + torch.as_tensor(
            fast, dtype=torch.int64)

    def panel_of(self, flat: torch.Tensor) -> torch.Tensor:
        """The panel of every flat index.

        Parameters
        ----------
        flat : tensor of int
            Flat indices, each in ``[0, total)``.

        Returns
        -------
        tensor of int64
            Of the shape of ``flat``.
        """
        flat = torch.as_tensor(flat, dtype=torch.int64)
        ends = torch.tensor(self.offsets[1:], dtype=torch.int64, device=flat.device)
        return torch.bucketize(flat, ends, right=True)

    def coordinates_on_panel(self, panel: int, flat: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Slow and fast coordinates of flat indices that all lie on one panel, as float64.

        The render's form of :meth:`coordinates`: floating-point division is exact for indices
        below 2**53 and several times faster than integer division on the CPU.

        Parameters
        ----------
        panel : int
            The panel every index lies on.
        flat : tensor of int
            Flat indices of pixels of that panel.

        Returns
        -------
        slow, fast : tensor of float64
            Integer-valued pixel coordinates, of the shape of ``flat``.
        """
        index = (flat - self.offsets[panel]).to(torch.float64)
        fpixels = self.panel_shapes[panel][1]
        slow = torch.floor(index / fpixels)
        return slow, index - slow * fpixels

    def coordinates(self, flat: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Panel, slow and fast coordinates (int64) of flat indices.

        Parameters
        ----------
        flat : tensor of int
            Flat indices, each in ``[0, total)``.

        Returns
        -------
        panel, slow, fast : tensor of int64
            Of the shape of ``flat``.
        """
        flat = torch.as_tensor(flat, dtype=torch.int64)
        if self.panels == 1:
            panel = torch.zeros_like(flat)
            within = flat
        else:
            panel = self.panel_of(flat)
            within = flat - torch.tensor(self.offsets, dtype=torch.int64, device=flat.device)[panel]
        widths = torch.tensor([fast for _, fast in self.panel_shapes], dtype=torch.int64, device=flat.device)[panel]
        slow = torch.div(within, widths, rounding_mode="floor")
        return panel, slow, within - slow * widths

    def selected_pixels(self, regions: Sequence[Roi], mask: Optional[torch.Tensor] = None,
                        device: Optional[torch.device] = None) -> torch.Tensor:
        """Flat indices of the pixels inside every panel's region and not masked, in traversal
        order (panel by panel, slow outer, fast inner): the one rule of which pixels a
        detector renders and a refinement may compare.

        Parameters
        ----------
        regions : sequence of (fmin, fmax, smin, smax)
            Every panel's region of interest, inclusive and clipped to it (``roi_bounds``).
        mask : tensor (total,) of bool, optional
            False for a masked pixel. Default: none masked.
        device : torch.device, optional
            Of the indices. Default: the mask's, else the CPU.

        Returns
        -------
        tensor (n,) of int64
        """
        device = device if device is not None else (mask.device if mask is not None else None)
        parts = []
        for offset, (fmin, fmax, smin, smax), (_, fpixels) in zip(self.offsets, regions, self.panel_shapes):
            slow = torch.arange(smin, smax + 1, device=device)
            fast = torch.arange(fmin, fmax + 1, device=device)
            parts.append(offset + (slow[:, None] * fpixels + fast[None, :]).reshape(-1))
        index = torch.cat(parts)
        return index if mask is None else index[mask.to(index.device)[index]]

    def selects_every_pixel(self, regions: Sequence[Roi], mask: Optional[torch.Tensor] = None) -> bool:
        """Whether :meth:`selected_pixels` of these regions and mask is every pixel, in order.

        Parameters
        ----------
        regions : sequence of (fmin, fmax, smin, smax)
            As for :meth:`selected_pixels`.
        mask : tensor (total,) of bool, optional
            As for :meth:`selected_pixels`.

        Returns
        -------
        bool
        """
        whole = all(tuple(region) == (0, fast - 1, 0, slow - 1)
                    for region, (slow, fast) in zip(regions, self.panel_shapes))
        return whole and (mask is None or bool(mask.all()))

    def check_flat(self, pixels, name: str = "pixels") -> torch.Tensor:
        """Flat pixel indices given by a caller, as int64, checked to name pixels of the detector.

        Parameters
        ----------
        pixels : tensor or sequence of int
            The caller's flat indices.
        name : str
            What they are, for the error message.

        Returns
        -------
        tensor (n,) of int64

        Raises
        ------
        ValueError
            Not a 1-D integer tensor, or an index outside ``[0, total)``.
        """
        indices = torch.as_tensor(pixels)
        if indices.dtype.is_floating_point or indices.dtype == torch.bool or indices.ndim != 1:
            raise ValueError(f"{name} must be a 1-D tensor of integer flat pixel indices, got {indices.dtype} of "
                             f"shape {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.total):
            raise ValueError(f"{name} holds indices from {int(indices.min())} to {int(indices.max())}, outside the "
                             f"detector's {self.total} pixels ({self._describe()}: 0 to {self.total - 1})")
        return indices.to(torch.int64)

    def as_panels(self, image: torch.Tensor, name: str = "image") -> torch.Tensor:
        """An image of the whole detector as ``(panels, slow, fast)``.

        Parameters
        ----------
        image : tensor
            ``(panels, slow, fast)`` (also ``(slow, fast)`` for one panel), or flat ``(total,)``.
        name : str
            What the image is, for the error message.

        Returns
        -------
        tensor (panels, slow, fast)
            A view of ``image`` where it can be.

        Raises
        ------
        ValueError
            A shape that is none of these (or panels of different sizes).
        """
        shape = tuple(image.shape)
        if len(set(self.panel_shapes)) == 1:
            panels = (self.panels,) + self.panel_shapes[0]
            if shape in ((self.total,), panels, self.image_shape):
                return image.reshape(panels)
        raise ValueError(f"{name} has shape {shape}, but the detector's images have shape {self.image_shape} "
                         f"({self._describe()})")

    @fill_doc
    def image_from_flat(self, flat_image: torch.Tensor) -> torch.Tensor:
        """A flat image of :attr:`total` pixels in the detector's :attr:`image_shape`.

        Parameters
        ----------
        %(flat_image)s

        Returns
        -------
        tensor
            A view of ``flat_image`` of shape :attr:`image_shape`.

        Raises
        ------
        ValueError
            The panels differ in size (see :attr:`image_shape`).
        """
        return flat_image.reshape(self.image_shape)

    @fill_doc
    def split(self, flat_image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """A flat image cut into one ``(slow, fast)`` image per panel.

        Parameters
        ----------
        %(flat_image)s

        Returns
        -------
        tuple of tensors (slow, fast)
            Views of ``flat_image``, in panel order.
        """
        return tuple(part.reshape(shape) for part, shape in zip(flat_image.split(self.panel_sizes), self.panel_shapes))

    def _describe(self) -> str:
        if self.panels == 1:
            slow, fast = self.panel_shapes[0]
            return f"(spixels, fpixels) = ({slow}, {fast})"
        return f"{self.panels} panels of (spixels, fpixels) {', '.join(map(str, self.panel_shapes))}"
