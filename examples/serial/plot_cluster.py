"""
Many shots on a cluster
=======================

A serial dataset is thousands of stills, and each shot's geometry step is independent
of the others': the work spreads over many cores.
:func:`~nanobrag_torch.refine.dataset.refine_dataset` takes a Dask client and runs the
shots' work on the cluster's workers. This page runs the same refinement in this
process and on a Dask ``LocalCluster`` of two worker processes, with the
shots given as image files, and checks that both give the same amplitudes. The last
section says what changes on a real cluster.
"""

# %%
# A script that starts worker processes
# -------------------------------------
# Dask starts each worker as a fresh Python process (the ``spawn`` method of
# ``multiprocessing``), and when the main program is a script, every new process
# first runs that script again from the top, as the module ``__mp_main__``. Without a
# guard, each worker would render the dataset again and try to start a cluster of its
# own. So the work of this page sits under ``if __name__ == "__main__":``, which is
# true in the script that was started and false in the workers. (In a notebook or
# in the documentation's build the main module is not a file, nothing is run again,
# and the guard does nothing; it is there for the downloaded script.)
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster

from nanobrag_torch.datasets import serial_dataset
from nanobrag_torch.io.images import write_cbf
from nanobrag_torch.refine import Shot, refine_dataset
from nanobrag_torch.refine.merging import compare_amplitudes

GROUP = "P 43 21 2"

# %%
# The shots as files
# ------------------
# Eight stills of 96 × 96 pixels of the crystal of the previous page, written as
# CBF files, the format of a Pilatus detector. A
# :class:`~nanobrag_torch.refine.dataset.Shot` may hold the path of its image instead
# of the counts: the
# image is read when it is needed, one at a time, so a dataset larger than the
# memory of any one machine can be refined.
if __name__ == "__main__":
    data = serial_dataset(8, seed=2, size_pixels=96, distance_mm=45.0,
                          N_cells=(10, 10, 20), mosaic_spread_deg=0.05,
                          mosaic_domains=5, n_anomalous=0)
    d_min = data.reflections.d_min_A
    folder = tempfile.TemporaryDirectory()
    files = []
    for shot in data.shots:
        path = Path(folder.name) / f"{shot.name}.cbf"
        write_cbf(path, shot.observed.astype(np.int32),
                  pixel_size_mm=shot.detector.pixel_size_mm,
                  distance_mm=shot.detector.distance_mm,
                  wavelength_A=shot.beam.wavelength_A,
                  beam_center_px=(48.0, 48.0))
        files.append(Shot(str(path), shot.crystal, shot.detector, shot.beam, shot.name))
    print(f"{len(files)} shots, e.g. {Path(files[0].observed).name} "
          f"({Path(files[0].observed).stat().st_size} bytes)")

# %%
# In this process
# ---------------
# The reference: the refinement without a client, every shot's work in this
# process, one after the other.
if __name__ == "__main__":
    here = refine_dataset(files, GROUP, d_min, cycles=3, progress=False)
    print(f"{np.isfinite(here.merged.F).sum()} amplitudes from "
          f"{here.merged.n_shots} shots, {len(here.history)} cycles")

# %%
# On a cluster
# ------------
# The same call with ``client=``. The cluster is two worker processes of one thread
# each; the client connects this process to its scheduler. ``refine_dataset`` splits
# the shots into one partition per worker, and each worker reads and prepares its
# shots and keeps them, reduced to the pixels near their spots, until the call
# ends. Every step then sends each worker only the current amplitudes and the
# shots' scales and background levels, and gathers back per-reflection and
# per-shot sums (for the amplitude step) or the shots' few refined parameters (for
# the geometry step).
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        workers = client.scheduler_info()["workers"].values()
        print(f"{len(workers)} workers, "
              f"{sum(w['nthreads'] for w in workers)} threads in all")
        there = refine_dataset(files, GROUP, d_min, cycles=3, client=client,
                               progress=False)

    measured = np.isfinite(here.merged.F)
    positive = measured & (here.merged.F > 0)  # amplitudes may end at their bound 0
    difference = np.abs(there.merged.F - here.merged.F)[positive]
    relative = difference / here.merged.F[positive]
    print(f"same reflections measured: "
          f"{np.array_equal(measured, np.isfinite(there.merged.F))}")
    print(f"largest relative difference of F: {relative.max():.1e} "
          f"(over the {positive.sum()} amplitudes above 0)")
    print(f"amplitudes equal to the last bit: "
          f"{(there.merged.F[measured] == here.merged.F[measured]).sum()} "
          f"of {measured.sum()}")
    print("same shot statuses:",
          [a.status for a in here.shots] == [b.status for b in there.shots])
    orientation = max(np.abs(a.reciprocal_basis_per_A - b.reciprocal_basis_per_A).max()
                      for a, b in zip(here.shots, there.shots))
    print(f"largest difference of a refined reciprocal vector: {orientation:.1e} 1/Å")
    folder.cleanup()

# %%
# The cluster changes where the work is done, not what is computed: each shot's
# geometry step is the same computation on a worker as here, and the amplitude step
# adds up the same sums, so the two runs agree to rounding. On the left, the
# amplitudes of the two runs; on the right, the cluster's against the truth (after
# the least-squares scale, as on the previous page): eight small shots and three
# cycles, chosen to keep this page quick, are far from the accuracy of a real
# dataset.
if __name__ == "__main__":
    n_asu = len(data.reflections.hkl)
    true_F = data.true_values.numpy()[:n_asu]
    cc, r = compare_amplitudes(there.merged.F, true_F)
    k = np.nansum(there.merged.F * true_F) / np.nansum(there.merged.F ** 2)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    axes[0].plot(here.merged.F[measured], there.merged.F[measured], ".", ms=4)
    axes[0].set_xlabel("F refined in this process")
    axes[0].set_ylabel("F refined on the cluster")
    axes[0].set_title(f"{measured.sum()} amplitudes")
    axes[1].plot(true_F[measured], k * there.merged.F[measured], ".", ms=4)
    axes[1].set_xlabel("true F")
    axes[1].set_ylabel("F refined on the cluster, scaled")
    axes[1].set_title(f"CC {cc:.3f}, R {r:.3f}")
    for ax in axes:
        limit = max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([0, limit], [0, limit], "k-", lw=0.8)
        ax.grid(alpha=0.3)
    plt.show()

# On an HPC cluster
# -----------------
# Only the line that makes the client changes. On a batch system,
# `dask-jobqueue <https://jobqueue.dask.org>`__ submits the workers as jobs, here
# 64 nodes of 32 single-threaded workers each:
#
# .. code-block:: python
#
#     from dask_jobqueue import SLURMCluster
#
#     cluster = SLURMCluster(cores=32, processes=32, memory="120GB",
#                            walltime="02:00:00", queue="compute")
#     cluster.scale(jobs=64)
#     client = Client(cluster)
#     result = refine_dataset(shots, "P 43 21 2", 1.8, client=client)
#
# On machines reached by SSH, ``SSHCluster`` starts the scheduler on the first host
# and the workers on the others:
#
# .. code-block:: python
#
#     from dask.distributed import SSHCluster
#
#     cluster = SSHCluster(["head", "node1", "node2"],
#                          worker_options={"nthreads": 1, "n_workers": 32})
#     client = Client(cluster)
#
# What to keep in mind there:
#
# * **Give the shots as file paths** on a file system that the workers and this
#   process both see. A path travels to a worker in a few bytes and the worker reads
#   the image itself, so no image passes through this process's network link; this
#   process reads each image only when it checks it and when it computes the
#   starting amplitudes (the conventional merging), one at a time.
# * **What travels per iteration** is small: the amplitudes and every shot's scale
#   and background level go out, sums over each worker's pixels come back (a few
#   numbers per reflection and per shot); the pixels never leave the worker that
#   prepared them. The user guide's :ref:`serial` gives the sizes for 100,000 shots.
# * **A lost worker** (a node that fails or a job that hits its wall time) does not
#   lose the run: the scheduler prepares its partition again on another worker and
#   the refinement ends at the same answer. With ``checkpoint=`` a call that is
#   itself killed resumes where it stopped.
# * **One thread per worker.** The shots are independent, so many single-threaded
#   workers use the cores better than a few multi-threaded ones; Dask sets
#   ``OMP_NUM_THREADS=1`` in the workers it starts.

# sphinx_gallery_thumbnail_number = 1
