"""SMV images (``.img``): the ASCII header nanoBragg writes and reads, and 16-bit pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

from .._docs import fill_doc
from .atomic import atomic_write

HEADER_BYTES = 512
UNTERMINATED_KEYS = ("DIALS_ORIGIN",)
"""nanoBragg writes these keys without the closing semicolon."""


def format_smv_header(header: Dict[str, str]) -> bytes:
    """The header: ``{``, one ``KEY=value;`` line per entry, ``}`` and a form feed, padded with
    spaces to 512 bytes.

    A header with long values that does not fit is padded to the next multiple of 512 instead,
    and its ``HEADER_BYTES`` says so (nanoBragg C would overflow).

    Parameters
    ----------
    header : dict of str
        Keys and already formatted values, in the order they are written; the value of
        ``HEADER_BYTES`` is replaced by the header's size.

    Returns
    -------
    bytes
        The header, a multiple of 512 bytes long.
    """
    size = HEADER_BYTES
    while True:
        lines = ["{"]
        for key, value in header.items():
            value = str(size) if key == "HEADER_BYTES" else value
            end = "" if key in UNTERMINATED_KEYS else ";"
            lines.append(f"{key}={value}{end}")
        encoded = ("\n".join(lines) + "\n}\f").encode("ascii")
        if len(encoded) <= size:
            return encoded + b" " * (size - len(encoded))
        size += HEADER_BYTES


@fill_doc
def write_smv(path: Union[str, Path], data: np.ndarray, header: Dict[str, str]) -> None:
    """Write an SMV image.

    Parameters
    ----------
    %(write_path)s
    data : ndarray (slow, fast) of uint16
        Pixels, stored in native byte order with the fast index varying fastest.
    header : dict of str
        Keys and already formatted values, in the order they are written.
    """
    pixels = np.ascontiguousarray(data, dtype=np.uint16)
    with atomic_write(path, "wb") as handle:
        handle.write(format_smv_header(header))
        handle.write(pixels.tobytes())


@fill_doc
def read_smv_header(path: Union[str, Path]) -> Dict[str, str]:
    """Read the header of an SMV image.

    Parameters
    ----------
    %(smv_path)s

    Returns
    -------
    dict of str
        Every ``KEY=value`` of the header; for a repeated key the last one wins.
        ``HEADER_BYTES``, ``SIZE1`` and ``SIZE2`` are there, and are integers ≥ 1.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not an SMV file, or one of those three keys is missing or not an integer ≥ 1.
    """
    return _parse_header(path, Path(path).read_bytes())[0]


@fill_doc
def read_smv(path: Union[str, Path]) -> Tuple[np.ndarray, Dict[str, str]]:
    """Read an SMV image.

    Parameters
    ----------
    %(smv_path)s

    Returns
    -------
    data : ndarray (SIZE2, SIZE1) of uint16
    header : dict of str
        As :func:`read_smv_header`.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not an SMV file, a header that runs past the ``HEADER_BYTES`` it declares (the pixels
        would be read from the wrong place: nanoBragg C writes such headers on large
        detectors), or a size that does not match the header.
    """
    raw = Path(path).read_bytes()
    header, text_bytes = _parse_header(path, raw)
    offset, fast, slow = (int(header[key]) for key in ("HEADER_BYTES", "SIZE1", "SIZE2"))
    if text_bytes > offset:
        raise ValueError(f"{path}: the header runs to byte {text_bytes}, past the HEADER_BYTES={offset} it "
                         f"declares, so the pixels cannot be located")
    order = "<" if header.get("BYTE_ORDER", "little_endian").startswith("little") else ">"
    count = fast * slow
    if len(raw) < offset + 2 * count:
        raise ValueError(f"{path}: {len(raw) - offset} bytes of pixels, expected {2 * count} for {fast}x{slow}")
    data = np.frombuffer(raw, dtype=f"{order}u2", count=count, offset=offset).reshape(slow, fast)
    return data.astype(np.uint16), header


def _parse_header(path, raw: bytes) -> Tuple[Dict[str, str], int]:
    """The header's keys, and the length of its text up to and including ``}`` and a form feed
    (or the ``}`` alone)."""
    if not raw.startswith(b"{\nHEADER_BYT"):
        raise ValueError(f"{path}: not an SMV image (does not start with '{{' and HEADER_BYTES)")
    end = raw.find(b"}")
    if end < 0:
        raise ValueError(f"{path}: not an SMV image (the header has no closing '}}')")
    header: Dict[str, str] = {}
    for line in raw[:end].decode("ascii", errors="replace").splitlines()[1:]:
        if "=" in line:
            key, value = line.split("=", 1)
            header[key.strip()] = value.strip().rstrip(";")
    for key in ("HEADER_BYTES", "SIZE1", "SIZE2"):
        text = header.get(key)
        if text is None or not text.isdigit() or int(text) < 1:
            raise ValueError(f"{path}: the SMV header needs {key}, an integer >= 1"
                             + (f"; it has {key}={text}" if text is not None else ""))
    return header, end + (2 if raw[end + 1:end + 2] == b"\f" else 1)


