"""Test-session set-up shared by every test module.

``NANOBRAGG_TEST_THREADS=n`` runs the session with ``torch.set_num_threads(n)`` (``tox -e
threads1`` sets it to 1, with ``OMP_NUM_THREADS=1`` for subprocesses), so that a check whose
tolerance only holds at one thread count — one order of the floating-point sums — fails on
the developer's own machine instead of on someone else's.

``--record-achieved`` makes the parity tests write the metrics a run achieves to
``tests/golden/achieved.json`` instead of asserting them.
"""

from __future__ import annotations

import os

import pytest
import torch

_THREADS = os.environ.get("NANOBRAGG_TEST_THREADS")


def pytest_addoption(parser):
    parser.addoption("--record-achieved", action="store_true", default=False,
                     help="parity tests: write the metrics this run achieves to tests/golden/achieved.json "
                          "(for the cases run) instead of asserting them")


def pytest_configure(config):
    if _THREADS:
        if not _THREADS.isdigit() or int(_THREADS) < 1:
            raise pytest.UsageError(f"NANOBRAGG_TEST_THREADS = {_THREADS!r} is invalid: give a number of "
                                    "threads >= 1")
        torch.set_num_threads(int(_THREADS))


def pytest_report_header(config):
    return f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads" + (
        f" (NANOBRAGG_TEST_THREADS={_THREADS})" if _THREADS else "")
