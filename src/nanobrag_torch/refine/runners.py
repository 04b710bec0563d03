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
from .amplitude_errors import shot_errors
from .amplitudes import AmplitudeSums, amplitude_sums
from .likelihoods import Likelihood
from .merging import IntegratedSpots, integrate_shot
from .parameters import Parameter
from .shared_geometry import SharedTerms, ShotBlocks, shot_blocks, step_loss, with_shared, with_step
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
    shared_blocks : list of ShotBlocks or None, optional
        Every shot's linearisation in the shared parameters during a step of them
        (:func:`shared_terms_partition`; None for a shot left out).
    """

    works: List[ShotWork]
    terms: Optional[AmplitudeTerms]
    likelihood: Likelihood
    dtype: torch.dtype
    start_spots: List[IntegratedSpots]
    shared_blocks: Optional[List[Optional[ShotBlocks]]] = None


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
    return dataclasses.replace(partition, works=works, terms=None, shared_blocks=None)


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


def shared_terms_partition(partition: Partition, reflections, values: torch.Tensor, shared: Sequence[Parameter],
                           shared_values: torch.Tensor) -> Partition:
    """Every shot's linearisation in its own and the shared parameters
    (:func:`~nanobrag_torch.refine.shared_geometry.shot_blocks`), kept with the partition.

    Parameters
    ----------
    partition : Partition
        The shots.
    reflections : ReflectionSet
        The refined reflections.
    values : tensor (n_parameters,)
        Their amplitudes.
    shared : sequence of Parameter
        The shared parameters.
    shared_values : tensor (Q,)
        Their values.

    Returns
    -------
    Partition
    """
    table = reflections.structure_factors(values.to(torch.float64))
    blocks = [shot_blocks(work, table, partition.likelihood, partition.dtype, shared, shared_values)
              for work in partition.works]
    return dataclasses.replace(partition, shared_blocks=blocks)


def reduced_partition(partition: Partition, dampings: Sequence[float]) -> List[Optional[SharedTerms]]:
    """The shots' shared terms, their own parameters eliminated, summed, for each damping
    (:meth:`~nanobrag_torch.refine.shared_geometry.ShotBlocks.reduced`).

    Parameters
    ----------
    partition : Partition
        The shots, linearised (:func:`shared_terms_partition`).
    dampings : sequence of float
        The dampings.

    Returns
    -------
    list of SharedTerms or None
        One per damping; None where no shot of the partition is refined.
    """
    blocks = [b for b in partition.shared_blocks if b is not None]
    return [SharedTerms.summed([b.reduced(damping) for b in blocks]) for damping in dampings]


def step_loss_partition(partition: Partition, reflections, values: torch.Tensor, shared: Sequence[Parameter],
                        shared_values: torch.Tensor, damping: float, step: torch.Tensor) -> float:
    """The shots' loss after a step of the shared parameters and their own steps with it
    (:func:`~nanobrag_torch.refine.shared_geometry.step_loss`).

    Parameters
    ----------
    partition : Partition
        The shots, linearised (:func:`shared_terms_partition`).
    reflections, values, shared, shared_values
        As for :func:`shared_terms_partition`.
    damping : float
        The damping the step was solved with.
    step : tensor (Q,)
        The step.

    Returns
    -------
    float
    """
    table = reflections.structure_factors(values.to(torch.float64))
    return sum(step_loss(work, blocks, table, partition.likelihood, partition.dtype, shared, shared_values, damping,
                         step) for work, blocks in zip(partition.works, partition.shared_blocks))


def take_step_partition(partition: Partition, shared: Sequence[Parameter], shared_values: torch.Tensor,
                        damping: float, step: torch.Tensor) -> Partition:
    """The shots after a kept step (:func:`~nanobrag_torch.refine.shared_geometry.with_step`).

    Parameters
    ----------
    partition : Partition
        The shots, linearised (:func:`shared_terms_partition`).
    shared : sequence of Parameter
        The shared parameters.
    shared_values : tensor (Q,)
        Their values before the step.
    damping : float
        The damping the step was solved with.
    step : tensor (Q,)
        The step.

    Returns
    -------
    Partition
        Without its linearisation.
    """
    works = [with_step(work, blocks, shared, shared_values, damping, step)
             for work, blocks in zip(partition.works, partition.shared_blocks)]
    return dataclasses.replace(partition, works=works, terms=None, shared_blocks=None)


def set_shared_partition(partition: Partition, shared: Sequence[Parameter], shared_values: torch.Tensor) -> Partition:
    """The shots with the shared parameters set in their configurations (from a checkpoint).

    Parameters
    ----------
    partition : Partition
        The shots.
    shared : sequence of Parameter
        The shared parameters.
    shared_values : tensor (Q,)
        Their values.

    Returns
    -------
    Partition
    """
    works = [with_shared(work, shared, shared_values) for work in partition.works]
    return dataclasses.replace(partition, works=works, terms=None, shared_blocks=None)


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


def errors_partition(partition: Partition, reflections, values: torch.Tensor, scales: torch.Tensor,
                     levels: torch.Tensor, fisher: torch.Tensor) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
    """The shots' parts of the amplitudes' variances with their own parameters free, summed,
    and each shot's own errors (:func:`~nanobrag_torch.refine.amplitude_errors.shot_errors`).

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
    fisher : tensor (n_parameters,)
        Every intensity's Fisher information over all shots.

    Returns
    -------
    variance : tensor (n_parameters,)
        :attr:`~nanobrag_torch.refine.amplitude_errors.ShotErrors.variance` summed over the
        partition's refined shots.
    stderr : dict of int to tensor (5,)
        The refined shots' own standard errors, by position in the dataset.
    """
    table = reflections.structure_factors(values.to(torch.float64))
    variance, stderr = torch.zeros_like(fisher), {}
    for work in partition.works:
        errors = shot_errors(with_factors(work, float(scales[work.index]), float(levels[work.index])), table,
                             reflections, partition.likelihood, partition.dtype, fisher)
        if errors is not None:
            variance.index_add_(0, errors.parameter, errors.variance)
            stderr[work.index] = errors.stderr
    return variance, stderr


def _summed_errors(parts) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
    """Partitions' :func:`errors_partition` results as one."""
    variance, stderr = None, {}
    for part_variance, part_stderr in parts:
        variance = part_variance if variance is None else variance + part_variance
        stderr.update(part_stderr)
    return variance, stderr


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
             "crystal": w.refined_crystal(), "detector": w.configs["detector"]} for w in partition.works]


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


def _summed_tries(parts: Sequence[List[Optional[SharedTerms]]]) -> Optional[List[SharedTerms]]:
    """Partitions' shared terms (one list per partition, one entry per damping) summed per
    damping; None when no partition has a refined shot."""
    tries = [SharedTerms.summed(column) for column in zip(*parts)]
    return None if not tries or tries[0] is None else tries


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

    def shared_terms(self, reflections, values: torch.Tensor, shared: Sequence[Parameter],
                     shared_values: torch.Tensor, dampings: Sequence[float]) -> Optional[List[SharedTerms]]:
        """Linearise every shot in its own and the shared parameters (:func:`shared_terms_partition`)
        and sum the shared terms, the shots' own parameters eliminated, for each damping.

        Parameters
        ----------
        reflections, values, shared, shared_values
            As for :func:`shared_terms_partition`.
        dampings : sequence of float
            The dampings.

        Returns
        -------
        list of SharedTerms or None
            One per damping; None when no shot is refined.
        """
        self._each(lambda p: shared_terms_partition(p, reflections, values, shared, shared_values))
        return _summed_tries([reduced_partition(p, dampings) for p in self._partitions])

    def step_loss(self, reflections, values: torch.Tensor, shared: Sequence[Parameter], shared_values: torch.Tensor,
                  damping: float, step: torch.Tensor) -> float:
        """Every shot's loss after a step (:func:`step_loss_partition`), summed.

        Parameters
        ----------
        reflections, values, shared, shared_values, damping, step
            As for :func:`step_loss_partition`.

        Returns
        -------
        float
        """
        return sum(step_loss_partition(p, reflections, values, shared, shared_values, damping, step)
                   for p in self._partitions)

    def take_step(self, shared: Sequence[Parameter], shared_values: torch.Tensor, damping: float,
                  step: torch.Tensor) -> None:
        """Move every shot by a kept step (:func:`take_step_partition`).

        Parameters
        ----------
        shared, shared_values, damping, step
            As for :func:`take_step_partition`.
        """
        self._partitions = [take_step_partition(p, shared, shared_values, damping, step) for p in self._partitions]

    def set_shared(self, shared: Sequence[Parameter], shared_values: torch.Tensor) -> None:
        """Set the shared parameters in every shot (:func:`set_shared_partition`).

        Parameters
        ----------
        shared : sequence of Parameter
            The shared parameters.
        shared_values : tensor (Q,)
            Their values.
        """
        self._partitions = [set_shared_partition(p, shared, shared_values) for p in self._partitions]

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

    def errors(self, reflections, values: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
               fisher: torch.Tensor) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
        """The shots' parts of the amplitudes' variances, summed, and their own errors
        (:func:`errors_partition`).

        Parameters
        ----------
        reflections, values, scales, levels, fisher
            As for :func:`errors_partition`.

        Returns
        -------
        variance : tensor (n_parameters,)
        stderr : dict of int to tensor (5,)
        """
        return _summed_errors(errors_partition(p, reflections, values, scales, levels, fisher)
                              for p in self._partitions)

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

    def shared_terms(self, reflections, values: torch.Tensor, shared: Sequence[Parameter],
                     shared_values: torch.Tensor, dampings: Sequence[float]) -> Optional[List[SharedTerms]]:
        """Linearise every partition on its worker and sum the shared terms here.

        Parameters
        ----------
        reflections, values, shared, shared_values
            As for :func:`shared_terms_partition`.
        dampings : sequence of float
            The dampings.

        Returns
        -------
        list of SharedTerms or None
            One per damping; None when no shot is refined.
        """
        self._submit(shared_terms_partition, reflections, values, shared, shared_values)
        futures = [self._client.submit(reduced_partition, p, dampings, pure=False) for p in self._partitions]
        return _summed_tries(self._client.gather(futures))

    def step_loss(self, reflections, values: torch.Tensor, shared: Sequence[Parameter], shared_values: torch.Tensor,
                  damping: float, step: torch.Tensor) -> float:
        """Every partition's loss after a step, on its worker, summed here.

        Parameters
        ----------
        reflections, values, shared, shared_values, damping, step
            As for :func:`step_loss_partition`.

        Returns
        -------
        float
        """
        futures = [self._client.submit(step_loss_partition, p, reflections, values, shared, shared_values, damping,
                                       step, pure=False) for p in self._partitions]
        return sum(self._client.gather(futures))

    def take_step(self, shared: Sequence[Parameter], shared_values: torch.Tensor, damping: float,
                  step: torch.Tensor) -> None:
        """Move every partition's shots by a kept step, on the workers.

        Parameters
        ----------
        shared, shared_values, damping, step
            As for :func:`take_step_partition`.
        """
        self._submit(take_step_partition, shared, shared_values, damping, step)

    def set_shared(self, shared: Sequence[Parameter], shared_values: torch.Tensor) -> None:
        """Set the shared parameters in every shot, on the workers.

        Parameters
        ----------
        shared : sequence of Parameter
            The shared parameters.
        shared_values : tensor (Q,)
            Their values.
        """
        self._submit(set_shared_partition, shared, shared_values)

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

    def errors(self, reflections, values: torch.Tensor, scales: torch.Tensor, levels: torch.Tensor,
               fisher: torch.Tensor) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
        """The shots' parts of the amplitudes' variances, computed on the workers and summed here,
        and their own errors.

        Parameters
        ----------
        reflections, values, scales, levels, fisher
            As for :func:`errors_partition`.

        Returns
        -------
        variance : tensor (n_parameters,)
        stderr : dict of int to tensor (5,)
        """
        futures = [self._client.submit(errors_partition, p, reflections, values, scales, levels, fisher, pure=False)
                   for p in self._partitions]
        return _summed_errors(self._client.gather(futures))

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
