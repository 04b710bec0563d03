"""Where the shots of a dataset refinement are held and worked on: this process, or Dask workers.

The shots are split into partitions once. A :class:`Partition` is the unit of work: the
functions of this module take one and return a new one (or small results), so that the same
code runs in this process (:class:`LocalRunner`) and as Dask tasks (:class:`DaskRunner`), where
each partition stays on the worker that prepared it and a lost worker's partitions are
prepared again from their shots by the scheduler.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..models.detector import Detector
from .amplitudes import AmplitudeSums, amplitude_sums
from .likelihoods import Likelihood
from .merging import IntegratedSpots, integrate_shot
from .shot_work import (PER_SHOT, AmplitudeTerms, ShotWork, SpotObservations, amplitude_terms, prepare_shot,
                        refine_geometry, spot_observations)


@dataclass
class Partition:
    """Some shots of a dataset, prepared, with their amplitude terms.

    Attributes
    ----------
    works : list of ShotWork
        The shots.
    terms : AmplitudeTerms or None
        Their pixels' terms at the current geometry, joined (None before the first amplitude
        step, or when no shot has any).
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.
    dtype : torch.dtype
        Of the simulation.
    start_spots : list of IntegratedSpots
        The shots' conventional integration at their given orientations, the start of the
        amplitudes (empty when the start was given).
    """

    works: List[ShotWork]
    terms: Optional[AmplitudeTerms]
    likelihood: Likelihood
    dtype: torch.dtype
    start_spots: List[IntegratedSpots]


def prepare_partition(shots: Sequence[Tuple[int, Any]], likelihood: Likelihood, dtype: torch.dtype,
                      per_shot: Tuple[str, ...] = PER_SHOT, start_set=None) -> Partition:
    """Read and prepare some shots, and integrate them for the start amplitudes.

    Parameters
    ----------
    shots : sequence of (int, Shot)
        The shots with their positions in the dataset.
    likelihood : Poisson, Gaussian or MeanSquaredError
        The noise model.
    dtype : torch.dtype
        Of the simulation.
    per_shot : tuple of str
        What is refined per shot (:data:`~nanobrag_torch.refine.shot_work.PER_SHOT`).
    start_set : ReflectionSet, optional
        Integrate every shot's spots of this set (not anomalous) at its given orientation
        (:func:`~nanobrag_torch.refine.merging.integrate_shot`) from the image read for it.

    Returns
    -------
    Partition
    """
    from .dataset import shot_image

    works, start_spots = [], []
    for index, shot in shots:
        image = shot_image(shot, index)
        if start_set is not None:
            start_spots.append(integrate_shot(shot, image, start_set))
        used = _allowed(shot, Detector(shot.detector), image.untrusted)
        works.append(prepare_shot(index, shot.name or str(index), image.counts, used, image.saturated, shot.crystal,
                                  shot.detector, shot.beam, per_shot))
    return Partition(works=works, terms=None, likelihood=likelihood, dtype=dtype, start_spots=start_spots)


def _allowed(shot, detector: Detector, untrusted: torch.Tensor) -> torch.Tensor:
    """The pixels a shot compares: rendered by its detector, trusted, and selected by its mask."""
    layout = detector.layout
    allowed = torch.zeros(layout.total, dtype=torch.bool)
    allowed[detector.rendered_pixels()] = True
    allowed = layout.as_panels(allowed) & ~untrusted
    if shot.mask is not None:
        allowed &= layout.as_panels(torch.as_tensor(np.asarray(shot.mask)) != 0, "mask")
    return allowed


def geometry_partition(partition: Partition, reflections, values: torch.Tensor, scales: torch.Tensor,
                       levels: torch.Tensor, first: bool) -> Partition:
    """Every shot's geometry step at the amplitudes ``values``, from the shots' scales and
    background levels of the last amplitude step.

    Parameters
    ----------
    partition : Partition
        The shots.
    reflections : ReflectionSet
        The refined reflections.
    values : tensor (n_parameters,)
        Their amplitudes.
    scales, levels : tensor (S,)
        Every shot's scale and background level, by position in the dataset.
    first : bool
        Whether it is the first geometry step (see :func:`~nanobrag_torch.refine.shot_work.refine_geometry`).

    Returns
    -------
    Partition
        With refined shots and no terms.
    """
    table = reflections.structure_factors(values.to(torch.float64))
    works = [refine_geometry(with_factors(work, float(scales[work.index]), float(levels[work.index])), table,
                             partition.likelihood, partition.dtype, first) for work in partition.works]
    return dataclasses.replace(partition, works=works, terms=None)


def with_factors(work: ShotWork, scale: float, level: float) -> ShotWork:
    """The shot with its scale and background level set.

    Parameters
    ----------
    work : ShotWork
        The shot.
    scale, level : float
        Its scale and background level.

    Returns
    -------
    ShotWork
    """
    values = work.values.clone()
    values[3], values[4] = scale, level
    return dataclasses.replace(work, values=values)


def terms_partition(partition: Partition, reflections) -> Partition:
    """The shots' amplitude terms at their current geometry.

    Parameters
    ----------
    partition : Partition
        The shots.
    reflections : ReflectionSet
        The refined reflections.

    Returns
    -------
    Partition
    """
    terms = AmplitudeTerms.joined([amplitude_terms(work, reflections, partition.dtype) for work in partition.works])
    return dataclasses.replace(partition, terms=terms)


def spot_observations_partition(partition: Partition, reflections) -> List[SpotObservations]:
    """The shots' recorded reflections summed over their pixels
    (:func:`~nanobrag_torch.refine.shot_work.spot_observations`), shots left out skipped.

    Parameters
    ----------
    partition : Partition
        The shots, at their refined geometry.
    reflections : ReflectionSet
        The refined reflections.

    Returns
    -------
    list of SpotObservations
    """
    found = (spot_observations(work, reflections, partition.dtype) for work in partition.works)
    return [observations for observations in found if observations is not None]


def sums_partition(partition: Partition, intensities: torch.Tensor, scales: torch.Tensor,
                   levels: torch.Tensor, detail: str = "fisher") -> AmplitudeSums:
    """The shots' :class:`~nanobrag_torch.refine.amplitudes.AmplitudeSums`.

    Parameters
    ----------
    partition : Partition
        The shots, with their terms.
    intensities : tensor (n_parameters,)
        ``|F|²`` of every parameter.
    scales, levels : tensor (S,)
        Every shot's scale and background level.
    detail : {"loss", "fisher", "coupling"}
        Which sums (:func:`~nanobrag_torch.refine.amplitudes.amplitude_sums`).

    Returns
    -------
    AmplitudeSums
    """
    return amplitude_sums(partition.terms, intensities, scales, levels, partition.likelihood, detail)


def observation_counts(terms: Optional[AmplitudeTerms], n_parameters: int) -> torch.Tensor:
    """How many shots recorded each parameter's reflection
    (:attr:`~nanobrag_torch.refine.shot_work.AmplitudeTerms.recorded`).

    Parameters
    ----------
    terms : AmplitudeTerms or None
        Some shots' pixels.
    n_parameters : int
        Parameters of the refined set.

    Returns
    -------
    tensor (n_parameters,) of int64
    """
    if terms is None:
        return torch.zeros(n_parameters, dtype=torch.int64)
    pairs = torch.unique(terms.shot[terms.recorded] * n_parameters + terms.parameter[terms.recorded])
    return torch.bincount(pairs % n_parameters, minlength=n_parameters)


def observations_partition(partition: Partition, n_parameters: int) -> torch.Tensor:
    """:func:`observation_counts` of a partition's shots.

    Parameters
    ----------
    partition : Partition
        The shots, with their terms.
    n_parameters : int
        Parameters of the refined set.

    Returns
    -------
    tensor (n_parameters,) of int64
    """
    return observation_counts(partition.terms, n_parameters)


def start_spots_partition(partition: Partition) -> List[IntegratedSpots]:
    """The partition's shots' spots integrated when they were prepared (:func:`prepare_partition`).

    Parameters
    ----------
    partition : Partition
        The shots.

    Returns
    -------
    list of IntegratedSpots
        In the partition's order of shots.
    """
    return partition.start_spots


def summaries_partition(partition: Partition) -> List[Dict[str, Any]]:
    """What the driver keeps of every shot: name, status, values, errors, refined crystal.

    Parameters
    ----------
    partition : Partition
        The shots.

    Returns
    -------
    list of dict
    """
    return [{"index": w.index, "name": w.name, "status": w.status, "reason": w.reason, "values": w.values,
             "stderr": w.stderr, "converged": w.converged, "message": w.message, "pixels": int(w.pixels.numel()),
             "crystal": w.refined_crystal()} for w in partition.works]


def with_values(partition: Partition, values: Dict[int, torch.Tensor]) -> Partition:
    """The partition with the shots' parameters set (from a checkpoint).

    Parameters
    ----------
    partition : Partition
        The shots.
    values : dict of int to tensor (5,)
        Parameters by shot position.

    Returns
    -------
    Partition
    """
    works = [dataclasses.replace(w, values=values[w.index].clone()) for w in partition.works]
    return dataclasses.replace(partition, works=works, terms=None)


class LocalRunner:
    """The partitions of a dataset in this process: one per shot, worked on in turn; their
    amplitude terms are joined into one, so that a sum over every shot is one pass.

    Parameters
    ----------
    shots : sequence of Shot
        The dataset.
    likelihood, dtype
        The noise model and the simulation's precision.
    per_shot : tuple of str
        What is refined per shot (:data:`~nanobrag_torch.refine.shot_work.PER_SHOT`).
    on_shot : callable, optional
        Called with (shots done, shots) as the shots of a step are worked on.
    """

    def __init__(self, shots: Sequence[Any], likelihood: Likelihood, dtype: torch.dtype,
                 per_shot: Tuple[str, ...] = PER_SHOT, on_shot: Optional[Callable[[int, int], None]] = None):
        self._shots = list(enumerate(shots))
        self._likelihood = likelihood
        self._dtype = dtype
        self._per_shot = per_shot
        self._on_shot = on_shot
        self._partitions: List[Partition] = []
        self._terms: Optional[AmplitudeTerms] = None

    def _each(self, step: Callable[[Partition], Partition]) -> None:
        done = []
        for k, partition in enumerate(self._partitions):
            done.append(step(partition))
            if self._on_shot is not None:
                self._on_shot(k + 1, len(self._partitions))
        self._partitions = done

    def prepare(self, start_set=None) -> None:
        """Read and prepare every shot (one at a time: an image is reduced to its spots' pixels
        before the next is read).

        Parameters
        ----------
        start_set : ReflectionSet, optional
            Also integrate every shot's spots of this set (:func:`prepare_partition`).
        """
        self._partitions = []
        for shot in self._shots:
            self._partitions.append(prepare_partition([shot], self._likelihood, self._dtype, self._per_shot,
                                                      start_set))
            if self._on_shot is not None:
                self._on_shot(len(self._partitions), len(self._shots))

    def start_spots(self) -> List[IntegratedSpots]:
        """Every shot's spots integrated when it was prepared, in the dataset's order.

        Returns
        -------
        list of IntegratedSpots
        """
        return [spots for p in self._partitions for spots in start_spots_partition(p)]

    def refine_geometry(self, reflections, values: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
                        first: bool) -> None:
        """Every shot's geometry step (:func:`geometry_partition`).

        Parameters
        ----------
        reflections : ReflectionSet
            The refined reflections.
        values : tensor (n_parameters,)
            Their amplitudes.
        scales, levels : tensor (S,)
            Every shot's scale and background level.
        first : bool
            Whether it is the first geometry step.
        """
        self._each(lambda p: geometry_partition(p, reflections, values, scales, levels, first))

    def amplitude_terms(self, reflections) -> None:
        """Every shot's amplitude terms (:func:`terms_partition`).

        Parameters
        ----------
        reflections : ReflectionSet
            The refined reflections.
        """
        self._each(lambda p: terms_partition(p, reflections))
        self._terms = AmplitudeTerms.joined([p.terms for p in self._partitions])
        self._partitions = [dataclasses.replace(p, terms=None) for p in self._partitions]

    def amplitude_sums(self, intensities: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
                       detail: str = "fisher") -> AmplitudeSums:
        """The sums over every shot.

        Parameters
        ----------
        intensities : tensor (n_parameters,)
            ``|F|²`` of every parameter.
        scales, levels : tensor (S,)
            Every shot's scale and background level.
        detail : {"loss", "fisher", "coupling"}
            Which sums (:func:`~nanobrag_torch.refine.amplitudes.amplitude_sums`).

        Returns
        -------
        AmplitudeSums
        """
        return amplitude_sums(self._terms, intensities, scales, levels, self._likelihood, detail)

    def observations(self, n_parameters: int) -> torch.Tensor:
        """How many shots recorded each parameter's reflection (:func:`observations_partition`).

        Parameters
        ----------
        n_parameters : int
            Parameters of the refined set.

        Returns
        -------
        tensor (n_parameters,) of int64
        """
        return observation_counts(self._terms, n_parameters)

    def spot_observations(self, reflections) -> List[SpotObservations]:
        """Every shot's recorded reflections (:func:`spot_observations_partition`), in the
        dataset's order.

        Parameters
        ----------
        reflections : ReflectionSet
            The refined reflections.

        Returns
        -------
        list of SpotObservations
        """
        return [o for p in self._partitions for o in spot_observations_partition(p, reflections)]

    def summaries(self) -> List[Dict[str, Any]]:
        """Every shot's summary (:func:`summaries_partition`), in the dataset's order.

        Returns
        -------
        list of dict
        """
        return sorted((s for p in self._partitions for s in summaries_partition(p)), key=lambda s: s["index"])

    def set_shot_values(self, values: Sequence[torch.Tensor]) -> None:
        """Set every shot's parameters (in the dataset's order), e.g. from a checkpoint.

        Parameters
        ----------
        values : sequence of tensor (5,)
            One per shot.
        """
        by_index = dict(enumerate(values))
        self._partitions = [with_values(p, by_index) for p in self._partitions]

    def close(self) -> None:
        """Let go of the partitions."""
        self._partitions = []
        self._terms = None


class DaskRunner(LocalRunner):
    """The partitions of a dataset on the workers of a Dask cluster: one partition per worker.

    Each partition is a future that stays on the worker that prepared it; each step submits one
    task per partition with the amplitudes as its argument and gathers small results. A
    partition lost with its worker is prepared again from its shots, which the scheduler holds
    with the task that first prepared it.

    Parameters
    ----------
    client : dask.distributed.Client
        The cluster.
    shots : sequence of Shot
        The dataset.
    likelihood, dtype
        The noise model and the simulation's precision.
    per_shot : tuple of str
        What is refined per shot (:data:`~nanobrag_torch.refine.shot_work.PER_SHOT`).
    """

    def __init__(self, client, shots: Sequence[Any], likelihood: Likelihood, dtype: torch.dtype,
                 per_shot: Tuple[str, ...] = PER_SHOT):
        super().__init__(shots, likelihood, dtype, per_shot)
        self._client = client

    def _submit(self, function: Callable, *args) -> None:
        self._partitions = [self._client.submit(function, p, *args, pure=False) for p in self._partitions]

    def prepare(self, start_set=None) -> None:
        """Split the shots among the workers and prepare (and integrate) each part there.

        Parameters
        ----------
        start_set : ReflectionSet, optional
            Also integrate every shot's spots of this set (:func:`prepare_partition`).
        """
        workers = max(1, len(self._client.scheduler_info()["workers"]))
        parts = [list(part) for part in np.array_split(np.arange(len(self._shots)), min(workers, len(self._shots)))]
        self._partitions = [self._client.submit(prepare_partition, [self._shots[i] for i in part], self._likelihood,
                                                self._dtype, self._per_shot, start_set, pure=False) for part in parts]

    def start_spots(self) -> List[IntegratedSpots]:
        """Every shot's spots integrated when it was prepared, gathered in the dataset's order.

        Returns
        -------
        list of IntegratedSpots
        """
        futures = [self._client.submit(start_spots_partition, p, pure=False) for p in self._partitions]
        return [spots for part in self._client.gather(futures) for spots in part]

    def refine_geometry(self, reflections, values: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
                        first: bool) -> None:
        """Every partition's geometry step, on its worker.

        Parameters
        ----------
        reflections : ReflectionSet
            The refined reflections.
        values : tensor (n_parameters,)
            Their amplitudes.
        scales, levels : tensor (S,)
            Every shot's scale and background level.
        first : bool
            Whether it is the first geometry step.
        """
        self._submit(geometry_partition, reflections, values, scales, levels, first)

    def amplitude_terms(self, reflections) -> None:
        """Every partition's amplitude terms, on its worker.

        Parameters
        ----------
        reflections : ReflectionSet
            The refined reflections.
        """
        self._submit(terms_partition, reflections)

    def amplitude_sums(self, intensities: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
                       detail: str = "fisher") -> AmplitudeSums:
        """The sums over every partition, computed on the workers.

        Parameters
        ----------
        intensities : tensor (n_parameters,)
            ``|F|²`` of every parameter.
        scales, levels : tensor (S,)
            Every shot's scale and background level.
        detail : {"loss", "fisher", "coupling"}
            Which sums (:func:`~nanobrag_torch.refine.amplitudes.amplitude_sums`).

        Returns
        -------
        AmplitudeSums
        """
        futures = [self._client.submit(sums_partition, p, intensities, scales, levels, detail, pure=False)
                   for p in self._partitions]
        total = None
        for sums in self._client.gather(futures):
            total = sums if total is None else total + sums
        return total

    def observations(self, n_parameters: int) -> torch.Tensor:
        """How many shots recorded each parameter's reflection, counted on the workers.

        Parameters
        ----------
        n_parameters : int
            Parameters of the refined set.

        Returns
        -------
        tensor (n_parameters,) of int64
        """
        futures = [self._client.submit(observations_partition, p, n_parameters, pure=False) for p in self._partitions]
        return sum(self._client.gather(futures))

    def spot_observations(self, reflections) -> List[SpotObservations]:
        """Every shot's recorded reflections, summed on the workers, in the dataset's order.

        Parameters
        ----------
        reflections : ReflectionSet
            The refined reflections.

        Returns
        -------
        list of SpotObservations
        """
        futures = [self._client.submit(spot_observations_partition, p, reflections, pure=False)
                   for p in self._partitions]
        return [o for part in self._client.gather(futures) for o in part]

    def summaries(self) -> List[Dict[str, Any]]:
        """Every shot's summary, gathered from the workers, in the dataset's order.

        Returns
        -------
        list of dict
        """
        futures = [self._client.submit(summaries_partition, p, pure=False) for p in self._partitions]
        return sorted((s for part in self._client.gather(futures) for s in part), key=lambda s: s["index"])

    def set_shot_values(self, values: Sequence[torch.Tensor]) -> None:
        """Set every shot's parameters (in the dataset's order), on the workers.

        Parameters
        ----------
        values : sequence of tensor (5,)
            One per shot.
        """
        self._submit(with_values, dict(enumerate(values)))

    def close(self) -> None:
        """Release the partitions' futures."""
        for future in self._partitions:
            future.release()
        self._partitions = []


def partition_runner(client, shots: Sequence[Any], likelihood: Likelihood, dtype: torch.dtype,
                     per_shot: Tuple[str, ...] = PER_SHOT,
                     on_shot: Optional[Callable[[int, int], None]] = None) -> LocalRunner:
    """The runner of a dataset: in this process without a client, else on its Dask cluster.

    Parameters
    ----------
    client : dask.distributed.Client or None
        The cluster, or None.
    shots : sequence of Shot
        The dataset.
    likelihood, dtype
        The noise model and the simulation's precision.
    per_shot : tuple of str
        What is refined per shot (:data:`~nanobrag_torch.refine.shot_work.PER_SHOT`).
    on_shot : callable, optional
        Progress of the shots in this process (not used on a cluster).

    Returns
    -------
    LocalRunner or DaskRunner
    """
    if client is None:
        return LocalRunner(shots, likelihood, dtype, per_shot, on_shot)
    return DaskRunner(client, shots, likelihood, dtype, per_shot)
