"""Per-shot intensities of a dataset refinement: one row per reflection recorded on a shot,
as the field's unmerged files hold them (:func:`nanobrag_torch.io.mtz.write_unmerged_mtz`).

Each row is the reflection's summed counts over the shot's compared pixels, less the shot's
refined background, divided by the shot's refined scale times the pixels' expected photons at
unit intensity: an estimate of ``|F|²`` corrected by the model for the shot's partiality and
pixel factors, on the scale of the merged intensities. Its standard error is the Poisson error
of the summed counts under the refined model: the counting error alone. The model's error in a
shot's partiality, which on strong partial spots is larger, is not in it (programs that scale
and merge unmerged data, such as careless, model that error themselves).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Sequence, Union

import numpy as np
import torch

from .shot_work import SHOT_PARAMETERS, SpotObservations

SHOT_COLUMNS = {"ROTX": SHOT_PARAMETERS[0], "ROTY": SHOT_PARAMETERS[1], "ROTZ": SHOT_PARAMETERS[2],
                "SCALE": SHOT_PARAMETERS[3], "BGSCALE": SHOT_PARAMETERS[4]}
"""The unmerged file's columns of each row's shot: its refined parameters (the rotations of the
indexed orientation about lab x, y, z in degrees, the scale, the background level)."""


@dataclass
class UnmergedIntensities:
    """Per-shot intensities of the recorded reflections.

    Attributes
    ----------
    shot : array (n,) of int
        The shot (its position in the dataset) of each row.
    hkl : array (n, 3) of int
        The indices as observed (P1: symmetry and Friedel mates apart).
    intensity, sigma_intensity : array (n,)
        The intensity estimate (on the scale of ``|F|²`` of the merged amplitudes) and its
        counting error.
    panel : array (n,) of int
        The detector panel of the reflection's pixels.
    fast_px, slow_px : array (n,)
        The centroid of the reflection's predicted spot over its compared pixels, in pixels of
        the panel (0 is the centre of its first pixel).
    space_group : str
        Of the refined set.
    cell_A_deg : tuple of 6 floats
        Of the refined set.
    """

    shot: np.ndarray
    hkl: np.ndarray
    intensity: np.ndarray
    sigma_intensity: np.ndarray
    panel: np.ndarray
    fast_px: np.ndarray
    slow_px: np.ndarray
    space_group: str
    cell_A_deg: tuple

    def write_mtz(self, path: Union[str, os.PathLike], shot_values: Sequence[Dict[str, float]]) -> None:
        """Write the rows as an unmerged MTZ file: BATCH (the shot's position + 1), H K L M/ISYM,
        I, SIGI, XDET, YDET (fast, slow pixel), PANEL and the shot's parameters
        (ROTX, ROTY, ROTZ, SCALE, BGSCALE).

        Parameters
        ----------
        path : str or path
            The file; written atomically.
        shot_values : sequence of dict
            Every shot's refined parameters by name (``ShotResult.values``), in the dataset's
            order.
        """
        from ..io.mtz import write_unmerged_mtz

        columns = {"PANEL": self.panel.astype(np.float64)}
        for column, name in SHOT_COLUMNS.items():
            per_shot = np.array([values[name] for values in shot_values], dtype=np.float64)
            columns[column] = per_shot[self.shot]
        write_unmerged_mtz(path, cell_A_deg=self.cell_A_deg, space_group=self.space_group, batch=self.shot + 1,
                           hkl=self.hkl, intensity=self.intensity, sigma_intensity=self.sigma_intensity,
                           xdet=self.fast_px, ydet=self.slow_px, extra_columns=columns)


def unmerged_intensities(observations: Sequence[SpotObservations], reflections, values: torch.Tensor,
                         scales: torch.Tensor, levels: torch.Tensor) -> UnmergedIntensities:
    """The rows of every shot's recorded reflections at the refined values.

    Parameters
    ----------
    observations : sequence of SpotObservations
        The shots' summed reflections (shots left out have none).
    reflections : ReflectionSet
        The refined reflections.
    values : tensor (n_parameters,)
        The refined amplitudes.
    scales, levels : tensor (S,)
        Every shot's refined scale and background level.

    Returns
    -------
    UnmergedIntensities
    """
    if not observations:
        empty = np.zeros(0)
        return UnmergedIntensities(shot=empty.astype(np.int64), hkl=np.zeros((0, 3), dtype=np.int64), intensity=empty,
                                   sigma_intensity=empty, panel=empty.astype(np.int64), fast_px=empty,
                                   slow_px=empty, space_group=reflections.space_group,
                                   cell_A_deg=tuple(reflections.cell_A_deg))

    def joined(name: str) -> torch.Tensor:
        return torch.cat([getattr(o, name) for o in observations])

    shot = torch.cat([torch.full((o.hkl.shape[0],), o.shot, dtype=torch.int64) for o in observations])
    hkl, counts, unit, background = joined("hkl"), joined("counts"), joined("unit"), joined("background")
    scale, level = scales.to(torch.float64)[shot], levels.to(torch.float64)[shot]
    model_intensity = values.to(torch.float64)[joined("parameter")] ** 2
    per_unit = scale * unit
    expected = per_unit * model_intensity + level * background
    return UnmergedIntensities(shot=shot.numpy(), hkl=hkl.numpy(),
                               intensity=((counts - level * background) / per_unit).numpy(),
                               sigma_intensity=(expected.sqrt() / per_unit).numpy(), panel=joined("panel").numpy(),
                               fast_px=joined("fast_px").numpy(), slow_px=joined("slow_px").numpy(),
                               space_group=reflections.space_group, cell_A_deg=tuple(reflections.cell_A_deg))
