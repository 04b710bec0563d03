"""Data sets: the tutorial's real data and experiment, and simulated serial-crystallography shots.

``A.mat`` is a MOSFLM orientation matrix of a triclinic crystal (a = 26.75, b = 31.31,
c = 33.67 Å) and ``scaled.hkl`` its 64,333 measured structure-factor amplitudes. They are
installed with the package, so examples and notebooks find them without a checkout
(:func:`tutorial_data_paths`). :func:`tutorial_experiment` returns the configurations and
structure factors of the experiment that the tutorial simulates with them.

For refining many still shots together: :func:`random_structure_factors` computes the
amplitudes of a random-atom structure in a space group (Friedel mates differing by anomalous
scatterers), and :func:`serial_dataset` renders randomly oriented microcrystals of it with the
engine, as nanoBragg C renders them (``benchmarks/make_serial_dataset.py`` makes the same kind
of data set with the C program).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from .config import BeamConfig, CrystalConfig, DetectorConfig
from .io.hkl import read_hkl_file
from .structure_factors import StructureFactors
from .symmetry import ReflectionSet, _gemmi


@dataclass(frozen=True)
class TutorialData:
    """Paths of the tutorial's files.

    Attributes
    ----------
    matrix : Path
        ``A.mat``: the MOSFLM orientation matrix (wavelength 0.9768 Å).
    hkl : Path
        ``scaled.hkl``: ``h k l F`` for 64,333 reflections.
    """

    matrix: Path
    hkl: Path


def data_path(name: str) -> Path:
    """Path of a data file shipped with the package.

    Parameters
    ----------
    name : str
        File name in the package's ``data`` folder, e.g. ``"A.mat"``.

    Returns
    -------
    Path
        The installed file.

    Raises
    ------
    FileNotFoundError
        No such file in the package data.
    """
    path = Path(str(resources.files("nanobrag_torch") / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"{name!r} is not in the package data folder {path.parent}")
    return path


def tutorial_data_paths() -> TutorialData:
    """Paths of the tutorial's ``A.mat`` and ``scaled.hkl``.

    Returns
    -------
    TutorialData
        ``.matrix`` (read it with :func:`nanobrag_torch.io.mosflm.read_mosflm_matrix` at
        wavelength 0.9768 Å) and ``.hkl`` (read it with
        :func:`nanobrag_torch.io.hkl.read_hkl_file`).

    Examples
    --------
    >>> from nanobrag_torch.datasets import tutorial_data_paths
    >>> tutorial_data_paths().matrix.name
    'A.mat'
    """
    return TutorialData(matrix=data_path("A.mat"), hkl=data_path("scaled.hkl"))


TUTORIAL_COMMAND = (
    "nanoBragg -mat A.mat -hkl scaled.hkl -nonoise -nointerpolate -oversample 1 \\\n"
    "  -exposure 1 -flux 1e18 -beamsize 1.0 -spindle_axis -1 0 0 \\\n"
    "  -Xbeam 217.742295 -Ybeam 213.907080 -distance 231.274660 -lambda 0.976800 \\\n"
    "  -pixel 0.172 -detpixels_x 2463 -detpixels_y 2527 \\\n"
    "  -odet_vector -0.000088 0.004914 -0.999988 -sdet_vector -0.005998 -0.999970 -0.004913 \\\n"
    "  -fdet_vector 0.999982 -0.005998 -0.000118 -beam_vector 0.00051387949 0.0 -0.99999986 \\\n"
    "  -Na 36 -Nb 47 -Nc 29 -phi 0 -osc 0 -phisteps 1 -mosaic 0.2 -mosaic_domains 5 -mosaic_seed 42"
)
"""The tutorial's experiment as a nanoBragg command line, to run in the folder of ``A.mat``
and ``scaled.hkl``."""


@dataclass(frozen=True)
class TutorialExperiment:
    """The tutorial's experiment at its true parameters: configurations and structure factors.

    Derive a variant with ``dataclasses.replace`` (another phi, an oscillation, a start
    for a refinement) or a piece of the detector with
    :func:`~nanobrag_torch.models.detector.detector_region`.

    Attributes
    ----------
    crystal : CrystalConfig
        ``A.mat``'s cell and orientation at 0.9768 Å, 36 × 47 × 29 cells, five mosaic domains
        (seed 42) spread by 0.2°, a still at phi 0° about the spindle (−1, 0, 0).
    detector : DetectorConfig
        The 2463 × 2527 Pilatus of 0.172 mm pixels at 231.27466 mm, tilted (CUSTOM vectors:
        fdet and sdet of the command line made unit vectors, the normal their cross product, as
        nanoBragg takes them), placed by its beam centre (217.742295, 213.907080) mm.
    beam : BeamConfig
        0.9768 Å, a fluence of 10²⁴ photons per m² (10¹⁸ photons per second for 1 s through a
        1 mm beam).
    structure_factors : StructureFactors
        ``scaled.hkl``'s 64,333 amplitudes, 0 for every other reflection.
    command : str
        The nanoBragg command line of the experiment, to run in the folder of ``A.mat`` and
        ``scaled.hkl``: the configurations are the ``nanobragg`` command's reading of it.
    """

    crystal: CrystalConfig
    detector: DetectorConfig
    beam: BeamConfig
    structure_factors: StructureFactors
    command: str


def tutorial_experiment(dtype: torch.dtype = torch.float64,
                        device: Optional[torch.device] = None) -> TutorialExperiment:
    """The tutorial's experiment: the crystal of ``A.mat`` and ``scaled.hkl`` on a Pilatus.

    A triclinic crystal (a = 26.75, b = 31.31, c = 33.67 Å) of 36 × 47 × 29 cells with five
    mosaic domains (seed 42) spread by 0.2°, recorded as a still at phi = 0° on a slightly
    tilted 2463 × 2527-pixel Pilatus at 231.27 mm in the CUSTOM convention, at λ = 0.9768 Å:
    the experiment of the refinement tutorial and of the gallery pages that build on it.

    Parameters
    ----------
    dtype : torch.dtype
        Floating type of the structure factors (give the simulation's, so that every crystal
        built from them uses them as they are).
    device : torch.device or str, optional
        Where the structure factors are. Default: the CPU.

    Returns
    -------
    TutorialExperiment
        ``.crystal``, ``.detector`` and ``.beam`` (the configurations), ``.structure_factors``
        and ``.command`` (the nanoBragg command line they correspond to).

    Examples
    --------
    >>> import dataclasses
    >>> from nanobrag_torch import detector_region
    >>> from nanobrag_torch.datasets import tutorial_experiment
    >>> experiment = tutorial_experiment()
    >>> experiment.crystal.N_cells, experiment.crystal.mosaic_spread_deg
    ((36, 47, 29), 0.2)
    >>> start = dataclasses.replace(experiment.crystal, phi_start_deg=1.0, mosaic_spread_deg=0.5)
    >>> region = detector_region(experiment.detector, fast0=1248, slow0=688, fast_pixels=384, slow_pixels=768)
    >>> region.fpixels, region.spixels
    (384, 768)
    """
    from .cli.plan import parse_args  # nanoBragg's reading of a command line, in one place

    paths = tutorial_data_paths()
    files = {"A.mat": str(paths.matrix), "scaled.hkl": str(paths.hkl)}
    plan = parse_args([files.get(word, word) for word in TUTORIAL_COMMAND.replace("\\\n", " ").split()[1:]])
    grid, metadata = read_hkl_file(paths.hkl, default_F=0.0)
    return TutorialExperiment(crystal=plan.crystal, detector=plan.detector, beam=plan.beam,
                              structure_factors=StructureFactors(grid, metadata, default_F=0.0, dtype=dtype,
                                                                 device=device),
                              command=TUTORIAL_COMMAND)


def random_structure_factors(cell_A_deg: Sequence[float], space_group: str, d_min_A: float, n_atoms: int,
                             n_anomalous: int, f_anomalous_e: float, seed: int, *, f_e: float = 7.0,
                             b_factor_A2: float = 20.0) -> StructureFactors:
    """The P1 amplitudes of a structure of atoms at random positions in a space group.

    ``n_atoms`` atoms at uniform random fractional positions in the unit cell, each expanded by
    the group's operations, scatter ``f_e`` electrons each; the first ``n_anomalous`` of them
    also scatter ``i · f_anomalous_e`` (f''). ``F(h) = |Σ_j (f_j + i f''_j) exp(2πi h·x_j)| ·
    exp(−B / (4 d²))``, so that the Friedel mates ``h`` and ``−h`` differ where f'' ≠ 0.

    Parameters
    ----------
    cell_A_deg : sequence of 6 floats
        a, b, c in Å and α, β, γ in degrees.
    space_group : str
        Hermann–Mauguin symbol, e.g. ``"P 43 21 2"``.
    d_min_A : float
        Resolution of the table in Å.
    n_atoms : int
        Atoms in the asymmetric unit (≥ 1).
    n_anomalous : int
        How many of them are anomalous scatterers (0 … n_atoms).
    f_anomalous_e : float
        Their f'' in electrons.
    seed : int
        Seed of the positions (NumPy's default generator).
    f_e : float
        Scattering factor of every atom in electrons (no angle dependence; the B factor gives
        the fall-off).
    b_factor_A2 : float
        Overall B factor in Å².

    Returns
    -------
    StructureFactors
        On the CPU in float64, with ``default_F`` 0: every P1 index to ``d_min_A`` (both
        Friedel mates) has its amplitude; systematic absences and 000 are 0.

    Raises
    ------
    ImportError
        gemmi is not installed (``pip install nanobrag-torch[io]``).
    ValueError
        ``n_atoms`` < 1 or ``n_anomalous`` outside 0 … n_atoms, or what
        :class:`~nanobrag_torch.symmetry.ReflectionSet` refuses.
    """
    if int(n_atoms) < 1 or not 0 <= int(n_anomalous) <= int(n_atoms):
        raise ValueError(f"random_structure_factors: n_atoms = {n_atoms!r} must be ≥ 1 and n_anomalous = "
                         f"{n_anomalous!r} within 0 … n_atoms")
    reflections = ReflectionSet(space_group, cell_A_deg, d_min_A, anomalous=True)
    group = _gemmi().SpaceGroup(reflections.space_group)
    positions = np.random.default_rng(seed).random((int(n_atoms), 3))
    factors = np.full(int(n_atoms), complex(f_e))
    factors[:int(n_anomalous)] += 1j * float(f_anomalous_e)
    operations = list(group.operations())
    rotations = np.array([np.array(op.rot, dtype=float) / op.DEN for op in operations])
    translations = np.array([np.array(op.tran, dtype=float) / op.DEN for op in operations])
    expanded = (np.einsum("oij,aj->oai", rotations, positions) + translations[:, None, :]).reshape(-1, 3)
    scattering = np.tile(factors, len(operations))
    rows, signs = reflections.asu_rows_of_parameters
    hkl = signs[:, None] * reflections.hkl[rows]  # one index of every parameter: F(+) and F(−) of acentrics
    amplitudes = np.empty(len(hkl))
    for start in range(0, len(hkl), 4096):  # (reflections × atoms) phases, a block at a time
        phases = np.exp(2j * np.pi * (hkl[start:start + 4096] @ expanded.T))
        amplitudes[start:start + 4096] = np.abs(phases @ scattering)
    amplitudes *= np.exp(-float(b_factor_A2) * _inverse_d_squared(reflections.cell_A_deg, hkl) / 4)
    return reflections.structure_factors(amplitudes)


def _inverse_d_squared(cell_A_deg: Sequence[float], hkl: np.ndarray) -> np.ndarray:
    """1/d² (Å⁻²) of every index: |h · B|² with B the rows a*, b*, c* of the cell."""
    return ((hkl @ _reciprocal_rows(cell_A_deg)) ** 2).sum(axis=1)


def _reciprocal_rows(cell_A_deg: Sequence[float]) -> np.ndarray:
    """a*, b*, c* (Å⁻¹) as rows, in gemmi's standard orientation of the cell (a along x)."""
    return np.array(_gemmi().UnitCell(*cell_A_deg).frac.mat.tolist())


def random_rotations(n: int, seed: int) -> np.ndarray:
    """Rotation matrices uniform on SO(3): unit quaternions of normal deviates.

    Parameters
    ----------
    n : int
        How many.
    seed : int
        Seed (NumPy's default generator).

    Returns
    -------
    ndarray (n, 3, 3)
        Proper rotation matrices.
    """
    quaternions = np.random.default_rng(seed).normal(size=(int(n), 4))
    w, x, y, z = (quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=1)


def rotation_by_angle(axis: Sequence[float], angle_deg: float) -> np.ndarray:
    """The rotation by ``angle_deg`` about ``axis`` (Rodrigues' formula).

    Parameters
    ----------
    axis : sequence of 3 floats
        Direction (any length > 0).
    angle_deg : float
        Angle in degrees (right-handed).

    Returns
    -------
    ndarray (3, 3)
    """
    u = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    angle = np.radians(angle_deg)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def oriented_reciprocal_vectors(cell_A_deg: Sequence[float], rotation: np.ndarray) -> Tuple[np.ndarray, ...]:
    """a*, b*, c* (Å⁻¹) of a cell turned by ``rotation`` from gemmi's standard orientation.

    Parameters
    ----------
    cell_A_deg : sequence of 6 floats
        a, b, c in Å and α, β, γ in degrees.
    rotation : ndarray (3, 3)
        Applied to the vectors of the standard orientation (a along x, b in the xy plane).

    Returns
    -------
    a_star, b_star, c_star : ndarray (3,)
        As :class:`~nanobrag_torch.config.CrystalConfig`'s ``mosflm_*_star`` take them.
    """
    rows = _reciprocal_rows(cell_A_deg) @ np.asarray(rotation, dtype=float).T
    return rows[0].copy(), rows[1].copy(), rows[2].copy()


class SerialShot(NamedTuple):
    """One still shot of :func:`serial_dataset`, with the configurations a refinement starts from.

    Parameters
    ----------
    observed : ndarray of float64 (slow, fast)
        Photon counts: the Poisson noise image less its ADC offset.
    crystal : CrystalConfig
        The start orientation (the truth turned by a small random rotation).
    detector : DetectorConfig
    beam : BeamConfig
        With the nominal fluence (the shot was rendered with it times its scale, which a
        refinement or a merging estimates).
    name : str
        ``"shot_000"``, ``"shot_001"``, ...
    """

    observed: np.ndarray
    crystal: CrystalConfig
    detector: DetectorConfig
    beam: BeamConfig
    name: str


@dataclass(frozen=True)
class SerialDataset:
    """Still shots of randomly oriented microcrystals, and the truth they were made from.

    Attributes
    ----------
    shots : tuple of SerialShot
        The observed images with the start crystals.
    structure_factors : StructureFactors
        The true P1 amplitudes (both Friedel mates).
    reflections : ReflectionSet
        The ASU reflections of the space group to the table's resolution (anomalous).
    true_values : tensor (n_parameters,)
        The true amplitudes in ``reflections``' parameter layout.
    true_crystals : tuple of CrystalConfig
        The orientations the shots were rendered with.
    start_crystals : tuple of CrystalConfig
        The shots' start orientations (as in ``shots``).
    true_scales : ndarray (n_shots,)
        Each shot's fluence over the nominal one.
    start_errors_deg : ndarray (n_shots,)
        The angle between each start orientation and the truth, in degrees.
    expected : ndarray (n_shots, slow, fast)
        The noise-free images (photons).
    """

    shots: Tuple[SerialShot, ...]
    structure_factors: StructureFactors
    reflections: ReflectionSet
    true_values: torch.Tensor
    true_crystals: Tuple[CrystalConfig, ...]
    start_crystals: Tuple[CrystalConfig, ...]
    true_scales: np.ndarray
    start_errors_deg: np.ndarray
    expected: np.ndarray


def detector_d_min_A(detector: DetectorConfig, wavelength_A: float) -> float:
    """The smallest d spacing (Å) a flat detector sees: that of its farthest corner from the beam.

    Parameters
    ----------
    detector : DetectorConfig
        An untilted detector (the beam along its normal).
    wavelength_A : float
        Wavelength in Å.

    Returns
    -------
    float
        ``λ / (2 sin θ)`` at the corner's scattering angle 2θ.
    """
    from .conventions import default_beam_center_mm
    centre = (detector.beam_center_f, detector.beam_center_s)
    if None in centre:
        centre = default_beam_center_mm(detector.detector_convention, detector.pixel_size_mm, detector.fpixels,
                                        detector.spixels)
    sizes = (detector.fpixels * detector.pixel_size_mm, detector.spixels * detector.pixel_size_mm)
    reach = np.hypot(*(max(c, size - c) for c, size in zip(centre, sizes)))
    theta = np.arctan2(reach, detector.distance_mm) / 2
    return float(wavelength_A / (2 * np.sin(theta)))


def serial_dataset(n_shots: int = 20, *, seed: int = 0, size_pixels: int = 128, pixel_size_mm: float = 0.172,
                   distance_mm: float = 60.0, wavelength_A: float = 1.0,
                   cell_A_deg: Sequence[float] = (79.0, 79.0, 38.0, 90.0, 90.0, 90.0),
                   space_group: str = "P 43 21 2", N_cells: Tuple[int, int, int] = (5, 5, 10),
                   mosaic_spread_deg: float = 0.0, mosaic_domains: int = 1, fluence: float = 2e27,
                   scale_range: float = 0.3, water_size_um: float = 0.25, n_atoms: int = 100,
                   n_anomalous: int = 4, f_anomalous_e: float = 4.0, start_error_deg: Tuple[float, float] = (0.1, 0.4),
                   dtype: torch.dtype = torch.float64) -> SerialDataset:
    """Still shots of randomly oriented microcrystals, rendered by the engine as nanoBragg C does.

    Every shot is a crystal of :func:`random_structure_factors` (to the resolution of the
    detector's corner) at a random orientation (uniform on SO(3)), with a fluence ``fluence ·
    scale`` (scale uniform in 1 ± ``scale_range``), a water background and C's Poisson noise
    (``-seed`` = 1 + the shot's number + 1000 · ``seed``). The images are rendered with ``c_quirks=True``, the
    nanoBragg command's simulator (C scales the water background by ``r_e² · fluence`` twice).
    The start orientation of each shot is the truth turned by an angle uniform in
    ``start_error_deg`` about a random axis.

    Parameters
    ----------
    n_shots : int
        Number of shots.
    seed : int
        Seed of everything random (structure, orientations, scales, start errors, noise).
    size_pixels : int
        The square detector's pixels per edge.
    pixel_size_mm, distance_mm : float
        Pixel size and detector distance in mm (the beam centre is nanoBragg's default).
    wavelength_A : float
        Wavelength in Å.
    cell_A_deg : sequence of 6 floats
        The unit cell (default a tetragonal protein cell of lysozyme's size).
    space_group : str
        Hermann–Mauguin symbol.
    N_cells : tuple of 3 ints
        Cells along a, b, c.
    mosaic_spread_deg : float
        Mosaic spread in degrees.
    mosaic_domains : int
        Mosaic domains (seed 1 + the shot's number).
    fluence : float
        Nominal photons per m².
    scale_range : float
        Half width of the shots' scales around 1.
    water_size_um : float
        Water thickness in µm.
    n_atoms, n_anomalous, f_anomalous_e
        The structure (:func:`random_structure_factors`).
    start_error_deg : tuple of 2 floats
        Range of the start orientations' errors in degrees.
    dtype : torch.dtype
        Of the rendering.

    Returns
    -------
    SerialDataset

    Examples
    --------
    >>> from nanobrag_torch.datasets import serial_dataset
    >>> data = serial_dataset(n_shots=2, size_pixels=32)
    >>> data.shots[0].observed.shape, data.shots[1].name
    ((32, 32), 'shot_001')
    """
    from .models.crystal import Crystal
    from .models.detector import Detector
    from .noise import noise_image
    from .simulator import Simulator

    rng = np.random.default_rng(seed)
    detector = DetectorConfig(distance_mm=distance_mm, pixel_size_mm=pixel_size_mm, fpixels=size_pixels,
                              spixels=size_pixels, oversample=1)
    d_min_A = detector_d_min_A(detector, wavelength_A)
    truth = random_structure_factors(cell_A_deg, space_group, d_min_A, n_atoms, n_anomalous, f_anomalous_e,
                                     seed=int(rng.integers(2 ** 31)))
    reflections = ReflectionSet(space_group, cell_A_deg, d_min_A, anomalous=True)
    rotations = random_rotations(n_shots, seed=int(rng.integers(2 ** 31)))
    scales = rng.uniform(1 - scale_range, 1 + scale_range, n_shots)
    errors = rng.uniform(*start_error_deg, n_shots)
    axes = rng.normal(size=(n_shots, 3))
    shots, true_crystals, start_crystals, expected = [], [], [], []
    for number in range(n_shots):
        true_crystal, start_crystal = (
            CrystalConfig(N_cells=tuple(N_cells), mosaic_spread_deg=mosaic_spread_deg, mosaic_domains=mosaic_domains,
                          mosaic_seed=1 + number, **dict(zip(("mosflm_a_star", "mosflm_b_star", "mosflm_c_star"),
                                                             oriented_reciprocal_vectors(cell_A_deg, rotation))))
            for rotation in (rotations[number], rotation_by_angle(axes[number], errors[number]) @ rotations[number]))
        beam = BeamConfig(wavelength_A=wavelength_A, fluence=fluence, water_size_um=water_size_um)
        simulator = Simulator(Crystal(true_crystal, truth, dtype=dtype), Detector(detector, dtype=dtype),
                              dataclasses.replace(beam, fluence=float(fluence * scales[number])), c_quirks=True)
        image = simulator.run().numpy()
        noisy, _, _ = noise_image(image, seed=1 + number + 1000 * seed)
        observed = noisy.astype(np.float64) - 40.0
        shots.append(SerialShot(observed, start_crystal, detector, beam, f"shot_{number:03d}"))
        true_crystals.append(true_crystal)
        start_crystals.append(start_crystal)
        expected.append(image)
    return SerialDataset(shots=tuple(shots), structure_factors=truth, reflections=reflections,
                         true_values=reflections.from_structure_factors(truth), true_crystals=tuple(true_crystals),
                         start_crystals=tuple(start_crystals), true_scales=scales, start_errors_deg=errors,
                         expected=np.stack(expected))
