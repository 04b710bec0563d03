"""Atomic file writes: a temporary file in the target's folder, renamed when complete."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import IO, Iterator, Union


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path`` and rename it onto ``path`` when the block succeeds.

    If the block raises, the temporary file is removed and an existing ``path`` is untouched.
    The new file gets the permissions of the file it replaces, or, for a new file, the usual
    ones (``0o666`` less the umask).

    Parameters
    ----------
    path : str or PathLike
        Final file name.
    mode : str
        ``"wb"`` (bytes) or ``"w"`` (text).

    Yields
    ------
    file object
        The open temporary file.
    """
    target = Path(path)
    temporary, descriptor = _create_temporary(target)
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
        if target.exists():
            os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _create_temporary(target: Path):
    """A new, hidden file next to ``target``, created with mode 0o666 (the umask applies)."""
    while True:
        temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
