"""The refinement's progress bar: stage, simulator evaluations, shots done and loss, through tqdm."""

from __future__ import annotations

import sys
from typing import Optional


class Progress:
    """A progress bar on standard error, or nothing.

    Parameters
    ----------
    enabled : bool or None
        True: always; False: never; None: when standard error is a terminal (so never in a
        documentation build or a log file). In a notebook, ``tqdm.auto`` draws a widget.
    """

    def __init__(self, enabled: Optional[bool]):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        self._postfix = {}
        if enabled:
            from tqdm.auto import tqdm  # imported only when a bar is drawn
            self._bar = tqdm(desc="refine", unit=" evaluations", leave=True, file=sys.stderr)

    def stage(self, name: str) -> None:
        """Show the stage the refinement is in.

        Parameters
        ----------
        name : str
            The stage, as the bar's description shows it.
        """
        if self._bar is not None:
            self._bar.set_description(f"refine: {name}")

    def evaluation(self) -> None:
        """Count one simulator evaluation."""
        if self._bar is not None:
            self._bar.update(1)

    def loss(self, value: float) -> None:
        """Show the current loss.

        Parameters
        ----------
        value : float
            The loss, shown with 6 significant digits.
        """
        self._show(loss=f"{value:.6g}")

    def shots(self, done: int, total: int) -> None:
        """Show how many shots of a dataset the current stage has worked on.

        Parameters
        ----------
        done, total : int
            Shots done, and shots in all.
        """
        self._show(shots=f"{done}/{total}")

    def _show(self, **fields: str) -> None:
        self._postfix.update(fields)
        if self._bar is not None:
            self._bar.set_postfix(self._postfix)

    def close(self) -> None:
        """Remove nothing, stop updating."""
        if self._bar is not None:
            self._bar.close()
