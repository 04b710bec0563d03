"""Shared parameter descriptions of the package's docstrings, and :func:`fill_doc`.

A parameter that recurs across the package (a device, a detector convention, the pixel counts,
a likelihood's expected and observed counts, ...) is described once, in :data:`docdict`. A
docstring names it by a placeholder ``%(key)s`` standing alone on its line, at the indentation
of the section's entries, and the function, method or class is decorated with
:func:`fill_doc`::

    @fill_doc
    def default_beam_center_mm(convention, pixel_size_mm, fpixels, spixels):
        \"\"\"The beam centre of a detector configuration that gives none.

        Parameters
        ----------
        %(convention)s
        %(pixel_size_mm)s
        %(fpixels_spixels)s
        \"\"\"

The decorator replaces the placeholder line by the entry (``name : type`` and its indented
description), every line indented as the placeholder was, so that napoleon, ``help()`` and
Sphinx read an ordinary NumPy-style docstring. Placeholders are ``%(key)s`` (as MNE's
``fill_doc``) because braces are common in the docstrings' own text (sets, dict literals);
only a placeholder on a line of its own is replaced, so a ``%`` elsewhere in a docstring needs
no escaping. An unknown key, or a placeholder inside a line of text, raises at import time.
For a property, decorate the getter below ``@property``; a ``staticmethod`` or ``classmethod``
may be decorated on either side.
"""

from __future__ import annotations

import re
import textwrap
from typing import Dict, TypeVar

T = TypeVar("T")

docdict: Dict[str, str] = {}
"""Key to NumPy-style text: one or more entries of a section, each a ``name : type`` line (or,
in a Returns section, a type alone) and its description indented by 4."""

# ----------------------------------------------------------------------------- tensors
docdict["device"] = """
device : torch.device or str, optional
    Device of every tensor it makes. Default: the CPU."""
docdict["dtype"] = """
dtype : torch.dtype, optional
    Floating type of every tensor it makes. Default: float64 (parity with nanoBragg C);
    float32 is faster."""

# ----------------------------------------------------------------------------- the fused Bragg sum
docdict["bragg_q"] = """
q : tensor (E, 3)
    Scattering vectors of the E evaluations, in 1/m."""
docdict["bragg_miller"] = """
miller : tensor (3, 3·O)
    Columns are the real-space vectors a, b, c (m) of each of the O orientations, so that
    ``q @ miller`` gives h, k, l."""
docdict["bragg_n_cells"] = """
n_cells : tensor (3,)
    Na, Nb, Nc (real values allowed)."""
docdict["bragg_table"] = """
table : StructureFactors
    Structure factors, looked up at the nearest integer indices."""
docdict["bragg_grad"] = """
grad : tensor (E,)
    ``∂loss/∂value`` of every evaluation."""
docdict["bragg_need"] = """
need_n, need_q : bool
    Whether the gradients with respect to ``n_cells`` and ``q`` are computed (``need_q``
    defaults to True).
need_table : bool
    Whether the gradient with respect to the table's amplitudes ``table.values`` is computed
    (default False: then it costs nothing)."""
docdict["bragg_tangents"] = """
tangent_q, tangent_miller, tangent_n : tensor or None
    Tangents of ``q``, ``miller`` and ``n_cells`` (same shapes); None for an input that does not
    change.
tangent_values : tensor or None
    Tangent of the table's flat padded amplitudes ``table.values`` (same shape); None (the
    default) for a table that does not change."""
docdict["bragg_value"] = """
tensor (E,)
    ``Σ_o F(hkl₀)² L(hkl)²`` of every evaluation."""
docdict["bragg_gradients"] = """
grad_q : tensor (E, 3) or None
    None unless ``need_q``.
grad_miller : tensor (3, 3·O)
    Of ``miller``.
grad_n : tensor (3,) or None
    None unless ``need_n``.
grad_values : tensor or None
    Of ``table.values`` (flat, the padded table's shape): ``2 F L² · grad`` added up at every
    position a lookup read, the border of ``default_F`` included. None unless ``need_table``."""
docdict["bragg_jvp"] = """
tensor (E,)
    The derivative of the value of every evaluation along the tangents."""

# ----------------------------------------------------------------------------- detector
docdict["convention"] = """
convention : DetectorConvention
    The detector convention, whose row of :data:`~nanobrag_torch.conventions.CONVENTIONS`
    fixes the frame and how the beam centre is given."""
docdict["pixel_size_mm"] = """
pixel_size_mm : float
    Pixel edge, in mm."""
docdict["fpixels_spixels"] = """
fpixels, spixels : int
    Pixels along the fast and slow axes."""
docdict["flat_image"] = """
flat_image : tensor (total,)
    An image as one value per pixel, in flat-index order (panel by panel, each slow-major)."""
docdict["roi"] = """
roi : tuple of 4 ints, optional
    Region of interest ``(fmin, fmax, smin, smax)``: inclusive, 0-based pixel bounds along
    fast and slow, clipped to the image. Default (None): the whole image."""

# ----------------------------------------------------------------------------- images and noise
docdict["float_image"] = """
float_image : ndarray, shape (spixels, fpixels)
    Expected photons per pixel (nanoBragg's float image); used at float32 precision, as C
    stores it."""
docdict["adc_offset"] = """
adc_offset : float
    Offset added to every pixel's count (``-adc``), in ADU. Default: 40, as nanoBragg C."""
docdict["noise_seed"] = """
seed : int
    The user-facing seed of ``-seed n`` (nanoBragg C draws with the internal seed ``-n``), at
    most 2⁶² in magnitude."""
docdict["smv_path"] = """
path : str or Path
    The SMV image file."""
docdict["write_path"] = """
path : str or Path
    File to write (atomically: an existing file is replaced only once the new one is
    complete)."""

# ----------------------------------------------------------------------------- likelihoods
docdict["expected"] = """
expected : tensor
    Expected photons per pixel μ (the model's image), any shape."""
docdict["observed"] = """
observed : tensor
    Observed photons per pixel n, of the shape of ``expected``."""
docdict["loss"] = """
tensor ()
    The loss ``L``, summed over the pixels."""
docdict["pixel_losses"] = """
tensor
    Each pixel's term of the loss, of the shape of ``expected``."""
docdict["gradient"] = """
tensor
    ``∂L/∂μ`` of every pixel, of the shape of ``expected``."""
docdict["fisher_weights"] = """
tensor
    ``w = E[∂²L/∂μ²]`` of every pixel, of the shape of ``expected``."""
docdict["covariance_factor"] = """
float
    The factor ``c`` of the covariance ``c (Jᵀ diag(w) J)⁻¹`` of the estimates."""
docdict["goodness_of_fit"] = """
ratio : float
    The figure: ≈ 1 for a model that fits counts with the noise the likelihood assumes, near
    0 for a model that fits a noise-free image.
excess_sigmas : float
    How far the summed statistic lies above its expectation, in its standard deviations."""
docdict["n_parameters"] = """
n_parameters : int
    Number of fitted parameters."""

# ----------------------------------------------------------------------------- refinement
docdict["refine_configs"] = """
configs : mapping
    ``{"crystal": CrystalConfig, "detector": DetectorConfig, "beam": BeamConfig}``."""
docdict["refined_parameters"] = """
parameters : sequence of Parameter
    The refined parameters, in the order of the value vectors."""
docdict["experiment_model"] = """
model : ExperimentModel
    The simulator as a function of the refined parameters."""
docdict["observed_spots"] = """
spots : Spots
    The spots found in the observed image."""
docdict["parameter_values"] = """
x : tensor (P,)
    The refined parameters' values, float64."""

# ----------------------------------------------------------------------------- runs and the command
docdict["prepared"] = """
prepared : PreparedRun
    The planned run (:meth:`Simulator.prepare <nanobrag_torch.simulator.Simulator.prepare>`)."""
docdict["plan"] = """
plan : Plan
    The command's plan: the library configurations and the outputs, from ``parse_args``."""
docdict["out"] = """
out : text file
    Where the lines are printed (standard output for the command)."""
docdict["pixel_batch_size"] = """
pixel_batch_size : int, optional
    Pixels per chunk. Default: about ``DEFAULT_EVALUATIONS_PER_CHUNK`` (2¹⁹) evaluations per
    chunk."""
docdict["render_progress"] = """
progress : callable, optional
    Called as ``progress(done_pixels, total_pixels)`` after every chunk."""
docdict["c_options"] = """
options : RenderOptions
    The run's discrete choices: which ``oversample_*`` flags are set, whether there is water,
    whether C's quirks are reproduced."""

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_PLACEHOLDER_LINE = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)


def fill_docstring(docstring: str, entries: Dict[str, str] = docdict) -> str:
    """Replace every placeholder line ``%(key)s`` of a docstring by ``entries[key]``.

    Parameters
    ----------
    docstring : str
        The docstring, with placeholders each on a line of its own.
    entries : dict of str to str
        The descriptions. Default: :data:`docdict`.

    Returns
    -------
    str
        The docstring with every placeholder line replaced by the entry's lines, each indented
        as the placeholder was.

    Raises
    ------
    KeyError
        A placeholder names no entry.
    ValueError
        A placeholder stands inside a line of text, where it cannot be indented.
    """
    def entry(match: re.Match) -> str:
        indent, key = match.groups()
        if key not in entries:
            raise KeyError(f"fill_doc: no shared description {key!r} (known: {', '.join(sorted(entries))})")
        text = textwrap.dedent(entries[key]).strip("\n")
        return "\n".join(indent + line if line.strip() else "" for line in text.splitlines())

    filled = _PLACEHOLDER_LINE.sub(entry, docstring)
    stray = _PLACEHOLDER.search(filled)
    if stray:
        raise ValueError(f"fill_doc: placeholder {stray.group(0)} must stand alone on its line")
    return filled


def fill_doc(obj: T) -> T:
    """Fill the shared parameter descriptions into the docstring of a function, method or class.

    Parameters
    ----------
    obj : function, method, class, staticmethod or classmethod
        What is documented; its ``__doc__`` is rewritten in place (nothing else changes).

    Returns
    -------
    object
        ``obj`` itself, so that it can be used as a decorator.

    Raises
    ------
    KeyError, ValueError
        As :func:`fill_docstring`: an unknown key, or a placeholder inside a line.
    """
    target = obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj
    if target.__doc__:  # None under python -OO
        target.__doc__ = fill_docstring(target.__doc__)
    return obj
