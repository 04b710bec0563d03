"""The saved state of a dataset refinement, so that a stopped run can resume.

The state is small: the shared amplitudes, every shot's parameters and the history, written
atomically (:func:`nanobrag_torch.io.atomic.atomic_write`) after every cycle with a fingerprint
of the call that wrote it.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import torch

from ..io.atomic import atomic_write

FORMAT = "nanobrag-torch dataset checkpoint 1"
"""What the file says it is."""


def save_checkpoint(path: Union[str, os.PathLike], fingerprint: str, state: Dict[str, Any]) -> None:
    """Write the state atomically.

    Parameters
    ----------
    path : str or path
        The checkpoint file.
    fingerprint : str
        What identifies the call (its shots and settings).
    state : dict
        Tensors, lists and numbers (``torch.save`` writes them).
    """
    with atomic_write(path) as handle:
        torch.save({"format": FORMAT, "fingerprint": fingerprint, "state": state}, handle)


def load_checkpoint(path: Union[str, os.PathLike], fingerprint: str) -> Optional[Dict[str, Any]]:
    """The state a checkpoint holds, or None when there is no file yet.

    Parameters
    ----------
    path : str or path
        The checkpoint file.
    fingerprint : str
        What identifies the call: a file written by another call is refused.

    Returns
    -------
    dict or None

    Raises
    ------
    ValueError
        The file is not a checkpoint, or was written by a call with other shots or settings.
    """
    if not os.path.exists(path):
        return None
    try:
        saved = torch.load(path, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same error to the user
        raise ValueError(f"{os.fspath(path)}: not a readable checkpoint ({error})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)}: not a dataset checkpoint of nanobrag-torch")
    if saved.get("fingerprint") != fingerprint:
        raise ValueError(f"{os.fspath(path)}: written by a refinement of other shots or settings; remove it or "
                         f"give another checkpoint path")
    return saved["state"]
