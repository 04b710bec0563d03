"""Refinement (:func:`nanobrag_torch.refine.refine`) on a small experiment, CI-sized.

The experiment: a triclinic-like cell (30 × 35 × 40 Å, β = 95°) of 20³ cells, five mosaic
domains spread by 0.3°, on a 256 × 256 detector of 0.1 mm pixels at 80 mm, λ = 1 Å, about
2,900 photons in all, in about 40 spots. Noise images come from the package's own Poisson
noise (bit-identical to ``nanobragg``'s). The tutorial's capture range (2.5° of orientation,
a quarter to four times the mosaic spread, 1 mm of distance and 0.5 mm of beam centre at
231 mm) is tested here at the same angles: the detector errors are scaled by 80/231.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from nanobrag_torch import BeamConfig, CrystalConfig, DetectorConfig, DetectorConvention, DetectorPivot, Simulator
from nanobrag_torch import Crystal, Detector, default_beam_center_mm
from nanobrag_torch.noise import noise_image
from nanobrag_torch.layout import PixelLayout
from nanobrag_torch.refine import Gaussian, MeanSquaredError, Poisson, RefinementResult, refine
from nanobrag_torch.refine.pixels import MARGIN_PX, informative_pixels
from nanobrag_torch.refine.solver import levenberg_marquardt
from nanobrag_torch.refine.spots import find_spots

CRYSTAL = CrystalConfig(cell_a=30.0, cell_b=35.0, cell_c=40.0, cell_alpha=90.0, cell_beta=95.0, cell_gamma=90.0,
                        misset_deg=(10.0, 20.0, 30.0), N_cells=(20, 20, 20), default_F=100.0,
                        mosaic_spread_deg=0.3, mosaic_domains=5, mosaic_seed=11)
DETECTOR = DetectorConfig(distance_mm=80.0, pixel_size_mm=0.1, fpixels=256, spixels=256)
BEAM = BeamConfig(wavelength_A=1.0, fluence=3e25)
EXPERIMENT = dict(crystal=CRYSTAL, detector=DETECTOR, beam=BEAM)
BEAM_CENTRE_MM = default_beam_center_mm(DetectorConvention.MOSFLM, 0.1, 256, 256)
SCALE_TO_TUTORIAL = 80.0 / 231.27
"""Detector errors of the tutorial (at 231 mm) scaled to this detector's distance, so that
they are the same angles."""

TRUTH = {"crystal.phi_start_deg": 0.0, "crystal.mosaic_spread_deg": 0.3,
         "crystal.misset_deg[0]": 10.0, "crystal.misset_deg[1]": 20.0, "crystal.misset_deg[2]": 30.0,
         "detector.distance_mm": 80.0, "detector.beam_center_f": BEAM_CENTRE_MM[0],
         "detector.beam_center_s": BEAM_CENTRE_MM[1], "scale": 1.0}


@functools.lru_cache(maxsize=None)
def expected_image() -> np.ndarray:
    """The noise-free image (photons per pixel), float64."""
    simulator = Simulator(Crystal(CRYSTAL), Detector(DETECTOR), BEAM)
    return simulator.run().numpy()


@functools.lru_cache(maxsize=None)
def counts(seed: int) -> np.ndarray:
    """A Poisson-noise image of the experiment (photon counts)."""
    return noise_image(expected_image(), seed=seed, adc_offset=0.0)[0].astype(np.float64)


def assert_within(result: RefinementResult, sigmas: float = 5.0):
    for name in result.names:
        error = result.values[name] - TRUTH[name]
        assert abs(error) < sigmas * result.stderr[name], (
            f"{name}: {result.values[name]:.6g} is {error / result.stderr[name]:.1f} standard errors "
            f"({result.stderr[name]:.3g}) from the truth {TRUTH[name]:.6g}")


# ----------------------------------------------------------------------------- capture range
FAR_ORIENTATION = {"crystal.misset_deg[0]": 12.5, "crystal.misset_deg[1]": 17.5, "crystal.misset_deg[2]": 32.5,
                   "crystal.mosaic_spread_deg": 1.2}
FAR_GEOMETRY = {"crystal.phi_start_deg": -2.5, "crystal.mosaic_spread_deg": 0.075,
                "detector.distance_mm": 80.0 + 1.0 * SCALE_TO_TUTORIAL,
                "detector.beam_center_f": BEAM_CENTRE_MM[0] + 0.5 * SCALE_TO_TUTORIAL,
                "detector.beam_center_s": BEAM_CENTRE_MM[1] - 0.5 * SCALE_TO_TUTORIAL}


@pytest.mark.parametrize("start", [FAR_ORIENTATION, FAR_GEOMETRY], ids=["misset+mosaic", "phi+mosaic+detector"])
def test_poisson_reaches_the_truth_from_far(start):
    result = refine(counts(5), start, likelihood="poisson", **EXPERIMENT)
    assert result.converged, result.message
    assert_within(result)


def test_gaussian_with_readout_noise_reaches_the_truth_from_far():
    readout = 2.0
    noisy = counts(6) + np.random.default_rng(6).normal(0.0, readout, counts(6).shape)
    start = {"crystal.phi_start_deg": 2.5, "crystal.mosaic_spread_deg": 0.075}
    result = refine(noisy.clip(min=0), start, likelihood=Gaussian(readout_noise_photons=readout), **EXPERIMENT)
    assert result.converged, result.message
    assert_within(result)


@pytest.mark.parametrize("likelihood", ["mse", "poisson"])
def test_noise_free_image_gives_the_truth_to_1e4_degrees(likelihood):
    start = {"crystal.phi_start_deg": -2.0, "crystal.mosaic_spread_deg": 0.9}
    result = refine(expected_image(), start, likelihood=likelihood, **EXPERIMENT)
    assert result.converged, result.message
    for name in start:
        assert abs(result.values[name] - TRUTH[name]) < 1e-4, (name, result.values[name])


def test_the_likelihood_scan_corrects_a_spread_the_search_overestimates():
    """The tutorial's crystal on a 384 × 768 region of its Pilatus, a still with about 1,300
    photons (noise seed 1) in some 25 spots. Counting indexed spots does not tell the spread
    there: the search chose 0.67°, from which the local stage stopped at 0.58° (+172 standard
    errors). The choice stage's likelihood scan moves it near the true 0.2°."""
    from nanobrag_torch import detector_region, read_hkl_file, read_mosflm_matrix, tutorial_data_paths

    data = tutorial_data_paths()
    a_star, b_star, c_star = read_mosflm_matrix(str(data.matrix), 0.9768)
    crystal = CrystalConfig(mosflm_a_star=a_star, mosflm_b_star=b_star, mosflm_c_star=c_star, spindle_axis=(-1, 0, 0),
                            N_cells=(36, 47, 29), mosaic_domains=5, mosaic_seed=42, mosaic_spread_deg=0.2)
    full = DetectorConfig(
        distance_mm=231.274660, pixel_size_mm=0.172, fpixels=2463, spixels=2527,
        detector_convention=DetectorConvention.CUSTOM, beam_center_f=217.742295, beam_center_s=213.907080,
        custom_fdet_vector=(0.999982, -0.005998, -0.000118), custom_sdet_vector=(-0.005998, -0.999970, -0.004913),
        custom_odet_vector=(-0.000088, 0.004914, -0.999988), custom_beam_vector=(0.00051387949, 0.0, -0.99999986))
    detector = detector_region(full, fast0=1248, slow0=688, fast_pixels=384, slow_pixels=768)
    beam = BeamConfig(wavelength_A=0.9768, flux=1e18, exposure=1.0, beamsize_mm=1.0)
    table = read_hkl_file(str(data.hkl), default_F=0.0)
    with torch.no_grad():
        expected = Simulator(Crystal(crystal, table, dtype=torch.float32), Detector(detector, dtype=torch.float32),
                             beam).run().numpy().astype(np.float64)
    observed = noise_image(expected, seed=1, adc_offset=0.0)[0].astype(np.float64)
    result = refine(observed, {"crystal.phi_start_deg": 1.0, "crystal.mosaic_spread_deg": 0.5}, crystal=crystal,
                    detector=detector, beam=beam, structure_factors=table)
    scanned = [entry["values"]["crystal.mosaic_spread_deg"] for entry in result.history if entry["stage"] == "spread scan"]
    assert len(scanned) == 1 and abs(scanned[0] - 0.2) < 0.05, result.history[:5]
    assert result.converged, result.message
    for name, truth in (("crystal.phi_start_deg", 0.0), ("crystal.mosaic_spread_deg", 0.2)):
        assert abs(result.values[name] - truth) < 3 * result.stderr[name], (name, result.values[name],
                                                                           result.stderr[name])


# ----------------------------------------------------------------------------- error bars
def test_error_bars_are_calibrated_over_noise_realisations():
    """(estimate − truth)/stderr over 30 noise seeds has a standard deviation within [0.7, 1.4]
    for every parameter (30 draws: a calibrated estimator falls outside with probability < 2 %)."""
    names = ["crystal.phi_start_deg", "crystal.mosaic_spread_deg", "detector.distance_mm", "detector.beam_center_f",
             "detector.beam_center_s", "scale"]
    pulls = {name: [] for name in names}
    for seed in range(100, 130):
        result = refine(counts(seed), {name: TRUTH[name] for name in names}, **EXPERIMENT)
        for name in names:
            pulls[name].append((result.values[name] - TRUTH[name]) / result.stderr[name])
    for name, values in pulls.items():
        spread = float(np.std(values, ddof=1))
        assert 0.7 <= spread <= 1.4, f"{name}: pulls have standard deviation {spread:.2f}: {np.round(values, 2)}"
        assert abs(float(np.mean(values))) < 3 * spread / math.sqrt(len(values)) + 0.2, (name, np.mean(values))


def test_standard_errors_are_the_inverse_fisher_information():
    """The covariance equals the inverse of Σ (∂μ/∂θ)(∂μ/∂θ)ᵀ/μ over the whole detector, with the
    derivatives taken by central differences in float64 here (the refinement uses forward-mode
    derivatives in float32 over the pixels near the spots)."""
    names = ["crystal.phi_start_deg", "crystal.mosaic_spread_deg", "detector.distance_mm"]
    result = refine(counts(7), {name: TRUTH[name] for name in names}, **EXPERIMENT)
    steps = {"crystal.phi_start_deg": 1e-4, "crystal.mosaic_spread_deg": 1e-4, "detector.distance_mm": 1e-4}

    def image(**changes):
        crystal = CrystalConfig(**{**CRYSTAL.__dict__, "phi_start_deg": result.values["crystal.phi_start_deg"],
                                   "mosaic_spread_deg": result.values["crystal.mosaic_spread_deg"],
                                   **changes.get("crystal", {})})
        detector = DetectorConfig(**{**DETECTOR.__dict__, "distance_mm": result.values["detector.distance_mm"],
                                     **changes.get("detector", {})})
        return Simulator(Crystal(crystal), Detector(detector), BEAM).run().reshape(-1)

    mu = image()
    columns = []
    for name in names:
        group, field = name.split(".")
        step = steps[name]
        plus = image(**{group: {field: result.values[name] + step}})
        minus = image(**{group: {field: result.values[name] - step}})
        columns.append((plus - minus) / (2 * step))
    jacobian = torch.stack(columns, dim=1)
    fisher = jacobian.T @ (jacobian / (mu + 1e-6)[:, None])
    expected = torch.sqrt(torch.diag(torch.linalg.inv(fisher)))
    for name, value in zip(names, expected):
        assert result.stderr[name] == pytest.approx(float(value), rel=0.05), name


# ----------------------------------------------------------------------------- robustness
def test_bounds_hold_and_replace_the_defaults():
    start = {"crystal.phi_start_deg": 0.05, "crystal.mosaic_spread_deg": 0.45}
    result = refine(counts(5), start, bounds={"crystal.mosaic_spread_deg": (0.4, 0.5)}, **EXPERIMENT)
    assert 0.4 <= result.values["crystal.mosaic_spread_deg"] <= 0.5
    assert all(0.4 <= entry["values"]["crystal.mosaic_spread_deg"] <= 0.5 for entry in result.history)


class _Bowl:
    """A quadratic loss with a region where the model is not finite, to test the solver."""

    def __init__(self):
        self.pixels = torch.arange(3)
        self.observed = torch.zeros(3, dtype=torch.float64)

    def loss(self, x):
        return math.nan if float(x[0]) > 1.5 else float(((x - 2.0) ** 2).sum())

    def linearize(self, x):
        return self.loss(x), 2 * (x - 2.0), 2 * torch.eye(x.numel(), dtype=torch.float64), torch.ones(3)

    def covariance(self, matrix, expected, n_parameters):
        return torch.linalg.inv(matrix)


def test_solver_rejects_steps_into_non_finite_losses():
    """The minimum (2, 2) lies where the loss is NaN: every step into that region is rejected and
    shrunk, so the solver ends at the edge of the finite region, never at a NaN."""
    seen = []
    start = torch.tensor([0.0, 0.0], dtype=torch.float64)
    result = levenberg_marquardt(_Bowl(), start, torch.full((2,), -math.inf, dtype=torch.float64),
                                 torch.full((2,), math.inf, dtype=torch.float64),
                                 on_iteration=lambda x, loss: seen.append(loss))
    assert seen and all(math.isfinite(loss) for loss in seen)
    assert seen == sorted(seen, reverse=True)
    assert math.isfinite(result.loss) and result.loss < _Bowl().loss(start)
    assert 1.4 < float(result.x[0]) <= 1.5


@pytest.mark.parametrize("change,words", [
    (dict(observed=np.zeros((10, 10))), "observed has shape"),
    (dict(observed=-np.ones((256, 256))), "negative pixels"),
    (dict(observed=np.full((256, 256), np.nan)), "non-finite"),
    (dict(parameters={}), "parameters is empty"),
    (dict(parameters={"crystal.colour": 1.0}), "not a refinable field"),
    (dict(parameters={"crystal.default_F": 100.0}), "not a refinable field"),
    (dict(parameters={"phi": 1.0}), "is not 'scale'"),
    (dict(parameters={"crystal.misset_deg": 1.0}), "holds 3 values"),
    (dict(parameters={"crystal.misset_deg[3]": 1.0}), "out of range"),
    (dict(parameters={"crystal.phi_start_deg[0]": 1.0}), "holds one value"),
    (dict(parameters={"crystal.phi_start_deg": math.nan}), "must be finite"),
    (dict(parameters={"crystal.mosaic_spread_deg": -0.1}), "outside its bounds"),
    (dict(bounds={"crystal.cell_a": (1, 2)}), "not refined"),
    (dict(mask=np.zeros((256, 256), dtype=bool)), "selects no pixel"),
    (dict(mask=np.ones((5, 5), dtype=bool)), "mask has shape"),
    (dict(background=np.ones((3, 3))), "background has shape"),
    (dict(background=-1.0), "negative"),
    (dict(likelihood="laplace"), "not one of"),
])
def test_bad_inputs_name_the_problem(change, words):
    arguments = dict(observed=counts(5), parameters={"crystal.phi_start_deg": 0.0}, **EXPERIMENT)
    arguments.update(change)
    observed = arguments.pop("observed")
    parameters = arguments.pop("parameters")
    with pytest.raises(ValueError, match=words):
        refine(observed, parameters, **arguments)


def test_a_parameter_the_image_does_not_depend_on_is_an_error():
    detector = DetectorConfig(**{**DETECTOR.__dict__, "pix0_override_m": (0.08, 0.0128, -0.0128)})
    with pytest.raises(ValueError, match="does not depend on detector.distance_mm"):
        refine(counts(5), {"detector.distance_mm": 80.0}, crystal=CRYSTAL, detector=detector, beam=BEAM)


# ----------------------------------------------------------------------------- the result
def test_every_field_of_the_result():
    start = {"crystal.phi_start_deg": 1.0, "crystal.mosaic_spread_deg": 0.2, "scale": 0.8}
    result = refine(torch.as_tensor(counts(5)), start, likelihood=Poisson(), progress=False, **EXPERIMENT)
    assert result.names == list(start)
    assert set(result.values) == set(result.stderr) == set(start)
    assert all(math.isfinite(v) for v in result.values.values())
    assert all(0 < s < math.inf for s in result.stderr.values())
    assert result.covariance.shape == (3, 3) and result.covariance.dtype == torch.float64
    torch.testing.assert_close(result.covariance, result.covariance.T, rtol=1e-12, atol=0)
    assert bool((torch.linalg.eigvalsh(result.covariance) > 0).all())
    torch.testing.assert_close(torch.sqrt(torch.diag(result.covariance)),
                               torch.tensor([result.stderr[n] for n in result.names], dtype=torch.float64))
    torch.testing.assert_close(torch.diag(result.correlation), torch.ones(3, dtype=torch.float64))
    stages = [entry["stage"] for entry in result.history]
    assert stages[:3] == ["start", "orientation search", "spot positions"] and stages[-1] == "local"
    assert result.history[0]["values"] == start
    assert [entry["iteration"] for entry in result.history] == list(range(len(result.history)))
    assert all(entry["pixels"] > 0 for entry in result.history)
    assert result.history[-1]["pixels"] == result.pixels
    local = [entry["loss"] for entry in result.history if entry["stage"] == "local"]
    assert local == sorted(local, reverse=True)
    assert result.converged and result.message.startswith("converged")
    assert result.evaluations > 0 and result.pixels > 0
    assert "crystal.phi_start_deg" in result.summary()


def _fast_columns(result: RefinementResult) -> torch.Tensor:
    """Fast coordinates of the pixels a refinement compared."""
    panel, _, fast = Detector(DETECTOR).layout.coordinates(result.pixel_indices)
    assert bool((panel == 0).all())
    return fast


def test_a_mask_and_a_background_are_used():
    """A background in the data is exactly accounted for when given (the scale comes out 1 on
    a noise-free image) and taken for signal when not (the scale comes out above 1); the
    masked pixels are never compared, though the unmasked refinement compares some of them."""
    background = 0.5
    observed = expected_image() + background
    start = {"scale": 0.8}
    result = refine(observed, start, background=background, **EXPERIMENT)
    assert result.values["scale"] == pytest.approx(1.0, abs=1e-4)
    without = refine(observed, start, **EXPERIMENT)
    assert without.values["scale"] > 1.05, without.values
    mask = np.ones((256, 256), dtype=bool)
    mask[:, :40] = False
    masked = refine(observed, start, mask=mask, background=background, **EXPERIMENT)
    assert masked.values["scale"] == pytest.approx(1.0, abs=1e-4)
    near_spots = int((_fast_columns(result) < 40).sum())
    assert near_spots > 0, "the masked columns must hold compared pixels for the test to mean something"
    assert int((_fast_columns(masked) < 40).sum()) == 0
    assert masked.pixels < result.pixels


def test_the_detector_mask_is_the_mask_argument():
    """One mask rule: a beamstop over the brightest spot in DetectorConfig.mask (where the
    simulator documents it) changes the compared pixels exactly as the same mask= argument."""
    image = expected_image()
    slow, fast = np.unravel_index(np.argmax(image), image.shape)
    beamstop = np.ones(image.shape, dtype=bool)
    beamstop[slow - 4:slow + 5, fast - 4:fast + 5] = False
    start = {"scale": 0.8}
    free = refine(image, start, **EXPERIMENT)
    by_argument = refine(image, start, mask=beamstop, **EXPERIMENT)
    detector = DetectorConfig(**{**DETECTOR.__dict__, "mask": beamstop})
    by_config = refine(image[None], start, crystal=CRYSTAL, detector=detector, beam=BEAM)  # (panels, slow, fast)
    masked = torch.from_numpy(~beamstop).reshape(-1)
    assert bool(masked[free.pixel_indices].any()), "the beamstop must cover compared pixels"
    assert not bool(masked[by_config.pixel_indices].any())
    assert torch.equal(by_config.pixel_indices, by_argument.pixel_indices)
    assert by_config.pixels == by_argument.pixels
    assert not torch.equal(by_config.pixel_indices, free.pixel_indices)
    assert by_config.values == by_argument.values


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_float32_and_float64_reach_the_truth(dtype):
    start = {"crystal.phi_start_deg": 0.5, "crystal.mosaic_spread_deg": 0.2}
    result = refine(counts(5), start, dtype=dtype, **EXPERIMENT)
    assert result.converged, result.message
    assert_within(result)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_refine_on_cuda_moves_every_input_there_once():
    """Observed counts, background and a structure-factor table given on the CPU go to the GPU at
    the entry point; the estimates reach the truth, and the covariance comes back on the CPU."""
    table = (torch.full((3, 3, 3), 100.0, dtype=torch.float64), dict(h_min=-1, h_max=1, k_min=-1, k_max=1,
                                                                     l_min=-1, l_max=1))
    start = {"crystal.phi_start_deg": 0.5, "crystal.mosaic_spread_deg": 0.2}
    result = refine(torch.as_tensor(counts(5)), start, background=torch.zeros(256, 256), structure_factors=table,
                    device="cuda", **EXPERIMENT)
    assert result.converged, result.message
    assert_within(result)
    assert result.covariance.device.type == "cpu" and result.pixel_indices.device.type == "cpu"


def test_spots_and_pixel_sets_stay_on_their_panel():
    """Two spots on adjacent rows of a flat image but on two panels are two spots, and the
    pixels near them stay on their own panels."""
    image = torch.zeros(2, 16, 16, dtype=torch.float64)
    image[0, 15, 7] = 20.0  # panel 0's last row
    image[1, 0, 7] = 30.0  # panel 1's first row
    everywhere = torch.ones(image.shape, dtype=torch.bool)
    spots = find_spots(image, torch.zeros_like(image), everywhere)
    assert spots.panel.tolist() == [0, 1]
    assert spots.photons.tolist() == [20.0, 30.0]
    assert spots.slow_px.tolist() == [15.0, 0.0] and spots.fast_px.tolist() == [7.0, 7.0]
    panel, slow, fast = PixelLayout(((16, 16), (16, 16))).coordinates(informative_pixels([], spots, everywhere))
    side = 2 * MARGIN_PX + 1
    assert int((panel == 0).sum()) == int((panel == 1).sum()) == (MARGIN_PX + 1) * side
    assert int(slow[panel == 0].min()) == 15 - MARGIN_PX and int(slow[panel == 1].max()) == MARGIN_PX


def test_progress_bar_only_when_asked(capsys):
    start = {"crystal.phi_start_deg": 0.2, "crystal.mosaic_spread_deg": 0.3}
    refine(counts(5), start, **EXPERIMENT)  # standard error is not a terminal under pytest
    assert capsys.readouterr().err == ""
    refine(counts(5), start, progress=True, **EXPERIMENT)
    drawn = capsys.readouterr().err
    assert "refine" in drawn and "evaluations" in drawn and "loss=" in drawn


def test_an_image_read_with_fabio_can_be_refined(tmp_path):
    """Another program's image of counts (here a CBF written by fabio, the standard Python reader
    of detector images) goes into the refinement as fabio reads it."""
    import fabio
    from fabio.cbfimage import CbfImage

    path = tmp_path / "counts.cbf"
    CbfImage(data=counts(9).astype(np.int32)).write(str(path))
    image = fabio.open(str(path)).data
    assert image.shape == (256, 256)
    start = {"crystal.phi_start_deg": 1.5, "crystal.mosaic_spread_deg": 0.6}
    assert_within(refine(image, start, **EXPERIMENT))


def test_parameters_the_image_cannot_tell_apart_are_named():
    """phi turns the crystal about the spindle (z here), as misset_deg[2] does."""
    start = {"crystal.phi_start_deg": 0.3, "crystal.misset_deg[2]": 30.0, "crystal.mosaic_spread_deg": 0.3}
    result = refine(counts(5), start, **EXPERIMENT)
    assert "cannot tell crystal.phi_start_deg, crystal.misset_deg[2] apart" in result.message
    assert "mosaic" not in result.message


# ----------------------------------------------------------------------------- no spots
@pytest.mark.parametrize("photons", [0.0, 0.1], ids=["blank", "faint"])
def test_an_image_without_spots_is_a_value_error_naming_the_threshold(photons):
    """A blank image and one a thirtieth of the threshold's brightness (the expected image scaled
    so that its brightest 3 × 3 box holds 0.1 photons): no box reaches the 3 photons."""
    image = expected_image()
    box = torch.nn.functional.avg_pool2d(torch.as_tensor(image)[None, None], 3, stride=1, padding=1).max() * 9
    faint = image * (photons / float(box))
    with pytest.raises(ValueError, match=r"no spots found.*threshold.* 3 photons at the lowest.*brightest pixel "
                                         + (r"0[^.]" if photons == 0 else r"0\.0")):
        refine(faint, {"crystal.phi_start_deg": 0.0}, **EXPERIMENT)


# ----------------------------------------------------------------------------- goodness of fit
@pytest.mark.parametrize("mu", [1e-6, 0.01, 1.0, 7.5, 99.0, 101.0, 400.0])
def test_the_expected_deviance_is_the_sum_over_counts(mu):
    """Against a plain sum over k of P(k | μ) d(k, μ) in Python floats (math.lgamma), far into
    the tail; the series above 100 photons to its truncation error (1e-6 and 1e-4 relative)."""
    from nanobrag_torch.refine.likelihoods import poisson_deviance_moments

    first = second = 0.0
    for k in range(int(mu + 40 * math.sqrt(mu) + 60)):
        probability = math.exp((k * math.log(mu) if k else 0.0) - mu - math.lgamma(k + 1))
        d = 2 * (mu - k + (k * math.log(k / mu) if k else 0.0))
        first, second = first + probability * d, second + probability * d * d
    mean, variance = poisson_deviance_moments(torch.tensor([mu], dtype=torch.float64))
    tolerance = (1e-12, 1e-12) if mu <= 100 else (1e-6, 1e-4)
    assert abs(float(mean[0]) - first) <= tolerance[0] * first
    assert abs(float(variance[0]) - (second - first * first)) <= tolerance[1] * variance[0]


def test_a_correct_model_on_a_noise_free_image_does_not_warn():
    """A noise-free image is the mean: the right model fits it to float32 precision and the
    figure is near 0, far below the 1 of Poisson counts."""
    result = refine(expected_image(), {"scale": 0.9}, **EXPERIMENT)
    assert 0 <= result.goodness_of_fit < 1e-3 and "Warning:" not in result.message, result.message
    assert "goodness of fit" in result.summary()


_TILT = math.radians(2.0)
TILTED = DetectorConfig(**{**DETECTOR.__dict__, "detector_convention": DetectorConvention.CUSTOM,
                           "detector_pivot": DetectorPivot.BEAM, "beam_center_f": 12.8, "beam_center_s": 12.8,
                           "custom_beam_vector": (1.0, 0.0, 0.0), "custom_fdet_vector": (0.0, 0.0, 1.0),
                           "custom_sdet_vector": (math.sin(_TILT), -math.cos(_TILT), 0.0),
                           "custom_odet_vector": (math.cos(_TILT), math.sin(_TILT), 0.0)})
"""The experiment's detector tilted by 2° in a CUSTOM frame, pivoting about the beam centre."""


@pytest.mark.slow
@pytest.mark.parametrize("noisy", [False, True], ids=["noise-free", "poisson"])
def test_a_wrong_detector_pivot_is_flagged(noisy):
    """The image of a detector tilted by 2° about its beam-centre pivot, refined with the same
    numbers pivoting about the sample (the spots land 80 mm · sin 2° ≈ 28 pixels away, the
    tutorial's 6 pixels at its 0.3° tilt): phi and the scale cannot make up for it, and the
    message warns."""
    with torch.no_grad():
        image = Simulator(Crystal(CRYSTAL), Detector(TILTED), BEAM).run().numpy()
    observed = noise_image(image, seed=3, adc_offset=0.0)[0].astype(np.float64) if noisy else image
    wrong = DetectorConfig(**{**TILTED.__dict__, "detector_pivot": DetectorPivot.SAMPLE})
    result = refine(observed, {"crystal.phi_start_deg": 0.0, "scale": 1.0}, crystal=CRYSTAL, detector=wrong, beam=BEAM)
    assert result.goodness_of_fit > 2 and "Warning: the model does not fit" in result.message, (
        result.goodness_of_fit, result.message)
    assert "pivot" in result.message


@pytest.mark.slow
def test_a_correct_model_on_poisson_counts_rarely_warns():
    """30 noise realisations of a 64 × 64 ROI of the experiment, scale and phi refined: no
    warning (at a false-alarm rate of 10 % that would happen with probability 0.9³⁰ = 4 %).
    Measured over 150 realisations (seeds 2000–2149, about 455 pixels compared): no warning, the
    figure 0.95 on average (at most 1.50), the excess at most 2.9 standard deviations (the
    warning needs 10)."""
    region = DetectorConfig(**{**DETECTOR.__dict__, "roi": (96, 159, 96, 159)})
    with torch.no_grad():
        image = Simulator(Crystal(CRYSTAL), Detector(region), BEAM).run().numpy()
    figures = []
    for seed in range(1000, 1030):
        observed = noise_image(image, seed=seed, adc_offset=0.0)[0].astype(np.float64)
        result = refine(observed, {"scale": 1.0, "crystal.phi_start_deg": 0.0}, crystal=CRYSTAL, detector=region,
                        beam=BEAM)
        assert "Warning:" not in result.message, (seed, result.message)
        figures.append(result.goodness_of_fit)
    assert 0.3 < float(np.mean(figures)) < 1.5, figures


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["poisson", "mse"])
def test_the_tutorial_still_with_the_other_pivot_is_flagged(likelihood):
    """Issue's case: nanoBragg's command of the tutorial, given ``-pix0_vector_mm`` beside
    ``-Xbeam/-Ybeam``, pivots about the sample; a ``DetectorConfig`` built from the same numbers
    with the CUSTOM convention's default (beam) pivot puts the spots about 6 pixels away. The
    refinement from the tutorial's start "converges" somewhere, and must say the fit is bad."""
    import dataclasses

    from nanobrag_torch.datasets import tutorial_experiment

    experiment = tutorial_experiment()
    as_c_places_it = dataclasses.replace(experiment.detector, detector_pivot=DetectorPivot.SAMPLE)
    with torch.no_grad():
        target = Simulator(Crystal(experiment.crystal, experiment.structure_factors), Detector(as_c_places_it),
                           experiment.beam).run().numpy()
    result = refine(target, {"crystal.phi_start_deg": 1.0, "crystal.mosaic_spread_deg": 0.5},
                    crystal=experiment.crystal, detector=experiment.detector, beam=experiment.beam,
                    structure_factors=experiment.structure_factors, likelihood=likelihood, progress=False)
    assert "Warning:" in result.message, result.message
    assert result.goodness_of_fit > 1.5
