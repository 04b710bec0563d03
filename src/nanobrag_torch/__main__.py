"""``python -m nanobrag_torch``: the nanoBragg-compatible command (see :mod:`nanobrag_torch.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
