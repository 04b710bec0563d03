"""The Jacobian of a simulated image with respect to a few parameters, by forward-mode automatic
differentiation: :func:`forward_jacobian`.

A simulated image has millions of pixels and depends on a handful of parameters. Reverse mode
(``backward``) gives the derivative of one number with respect to all parameters per pass;
forward mode gives the derivative of every pixel with respect to one parameter per pass, so the
whole Jacobian costs one pass per parameter.
"""

from __future__ import annotations

from typing import Callable, Tuple

import torch
import torch.autograd.forward_ad as forward_ad


def forward_jacobian(function: Callable[[torch.Tensor], torch.Tensor],
                     values: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The value of ``function(values)`` and its Jacobian, one forward-mode pass per parameter.

    Pass ``j`` evaluates ``function`` on ``values`` as a dual tensor whose tangent is the
    ``j``-th unit vector (:mod:`torch.autograd.forward_ad`); the output's tangent is the
    Jacobian's ``j``-th column. Every operation in ``function`` must support forward mode, as
    the simulator's do.

    Parameters
    ----------
    function : callable
        Takes a tensor of shape (P,), the parameters, and returns a tensor of any shape, e.g.
        the expected photons per pixel of ``Simulator.run``.
    values : tensor (P,)
        The parameters at which to evaluate; its dtype and device are those of the passes.

    Returns
    -------
    value : tensor
        ``function(values)``, without tangent.
    jacobian : tensor (\\*value.shape, P)
        ``jacobian[..., j]`` is the derivative of ``value`` with respect to ``values[j]`` (in the
        units of the output per unit of the parameter); zero where the output does not depend
        on it.

    Raises
    ------
    ValueError
        ``values`` is not one-dimensional or is empty.

    Notes
    -----
    A reverse-mode graph is recorded as usual when ``values`` requires grad; call it under
    :func:`torch.no_grad` when only the derivatives are wanted.

    Examples
    --------
    >>> import torch
    >>> from nanobrag_torch.refine import forward_jacobian
    >>> value, jacobian = forward_jacobian(lambda x: torch.stack([x[0] * x[1], x[1] ** 2]),
    ...                                    torch.tensor([2.0, 3.0]))
    >>> value
    tensor([6., 9.])
    >>> jacobian
    tensor([[3., 2.],
            [0., 6.]])
    """
    values = torch.as_tensor(values)
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(f"values must be a non-empty 1-d tensor of parameters, got shape {tuple(values.shape)}")
    columns = []
    for j in range(values.numel()):
        direction = torch.zeros_like(values)
        direction[j] = 1
        with forward_ad.dual_level():
            primal, tangent = forward_ad.unpack_dual(function(forward_ad.make_dual(values, direction)))
            value = primal.clone()
            columns.append(torch.zeros_like(value) if tangent is None else tangent.clone())
    return value, torch.stack(columns, dim=-1)
