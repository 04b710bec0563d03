"""Vector and rotation helpers on tensors, differentiable in every argument.

All rotations are active and right-handed, as in nanoBragg C.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from ._docs import fill_doc


@fill_doc
def as_tensor(value: Any, device: Optional[torch.device], dtype: torch.dtype) -> torch.Tensor:
    """Convert a number, sequence, array or tensor to a tensor on ``device`` with ``dtype``.

    A tensor keeps its autograd graph (it is moved and cast, never copied out of the graph),
    so a parameter with ``requires_grad=True`` stays differentiable.

    Parameters
    ----------
    value : number, sequence, ndarray or tensor
        What to convert; a sequence may mix numbers and tensors (they are stacked).
    device : torch.device or None
        Target device; None keeps a tensor's device and puts anything else on the CPU.
    dtype : torch.dtype
        Target floating type.

    Returns
    -------
    tensor
    """
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return torch.stack([as_tensor(v, device, dtype) for v in value])
    return torch.as_tensor(value, device=device, dtype=dtype)


def same_device(a: torch.device, b: torch.device) -> bool:
    """Same device type and index; a device without an index (``cuda``) matches any index.

    Parameters
    ----------
    a, b : torch.device
        The devices to compare.

    Returns
    -------
    bool
    """
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def unit(vector: torch.Tensor) -> torch.Tensor:
    """``vector / |vector|`` along the last axis.

    Parameters
    ----------
    vector : tensor (..., 3)
        Non-zero vectors.

    Returns
    -------
    tensor (..., 3)
        Unit vectors along them.
    """
    return vector / torch.linalg.vector_norm(vector, dim=-1, keepdim=True)


def unit_or_zero(vector: torch.Tensor) -> torch.Tensor:
    """``vector / |vector|`` along the last axis, and the zero vector for a zero vector, as
    nanoBragg's ``unitize`` makes it; value and gradient are finite everywhere.

    For the directions nanoBragg builds by cross products (the polarization frame, the axis of
    horizontal divergence), which are zero when the two vectors are parallel.

    Parameters
    ----------
    vector : tensor (..., 3)
        Vectors, zero allowed.

    Returns
    -------
    tensor (..., 3)
        Unit vectors along them; zero where ``vector`` is zero.
    """
    squared = (vector * vector).sum(dim=-1, keepdim=True)
    zero = squared == 0
    return torch.where(zero, torch.zeros_like(vector),
                       vector / torch.sqrt(torch.where(zero, torch.ones_like(squared), squared)))


def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Dot product along the last axis.

    Parameters
    ----------
    u, v : tensor (..., 3)
        Vectors (broadcast against each other).

    Returns
    -------
    tensor (...)
    """
    return (u * v).sum(dim=-1)


def rotation_about_axis(axis: torch.Tensor, angle_rad: torch.Tensor) -> torch.Tensor:
    """Rotation matrices for right-handed rotations by ``angle_rad`` about unit ``axis``.

    Parameters
    ----------
    axis : tensor (..., 3)
        Unit rotation axes.
    angle_rad : tensor (...)
        Angles in radians (broadcast against the axes).

    Returns
    -------
    tensor (..., 3, 3)
        ``R`` such that ``R @ v`` is ``v`` rotated.
    """
    c = torch.cos(angle_rad)[..., None, None]
    s = torch.sin(angle_rad)[..., None, None]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = torch.zeros_like(x)
    cross = torch.stack([
        torch.stack([zero, -z, y], dim=-1),
        torch.stack([z, zero, -x], dim=-1),
        torch.stack([-y, x, zero], dim=-1),
    ], dim=-2)
    outer = axis[..., :, None] * axis[..., None, :]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return c * eye + s * cross + (1 - c) * outer


def rotation_xyz(angles_rad: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Rz(rz) @ Ry(ry) @ Rx(rx)``: rotate about lab x first, then y, then z.

    Parameters
    ----------
    angles_rad : sequence of 3 tensors ()
        Angles ``rx, ry, rz`` in radians about lab x, y and z; the matrix takes their dtype and
        device.

    Returns
    -------
    tensor (3, 3)
    """
    rx, ry, rz = angles_rad
    one, zero = torch.ones_like(rx), torch.zeros_like(rx)
    cx, sx, cy, sy, cz, sz = torch.cos(rx), torch.sin(rx), torch.cos(ry), torch.sin(ry), torch.cos(rz), torch.sin(rz)
    # built from the sines and cosines by stacking: under forward-mode differentiation an
    # elementwise product of a dual tensor with a constant costs ~0.5 ms in torch 2.13
    about_x = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx]).reshape(3, 3)
    about_y = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy]).reshape(3, 3)
    about_z = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one]).reshape(3, 3)
    return about_z @ about_y @ about_x
