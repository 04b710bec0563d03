"""Reading the text files of nanoBragg (matrices, HKL lists, source lists) with errors that name
the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Union


def read_text(path: Union[str, Path]) -> str:
    """The content of a UTF-8 (or ASCII) text file.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        Its text.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not text: the message names the file, the line and the byte offset of the
        first byte that is not UTF-8.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path}:{line}: not a text file (byte {error.start} is not UTF-8 text)") from None
