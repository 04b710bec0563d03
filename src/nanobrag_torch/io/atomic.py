"""Atomic file writes: a temporary file in the target's folder, renamed when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path`` and rename it onto ``path`` when the block succeeds.

    If the block raises, the temporary file is removed and an existing ``path`` is untouched.

    Parameters
    ----------
    path : str or PathLike
        Final file name.
    mode : str
        ``"wb"`` or ``"w"``.
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                             dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
