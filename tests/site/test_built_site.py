"""The built site holds what the documentation promises: pages, images, downloads, the GIF."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List

import nbformat
import pytest
from PIL import Image

pytestmark = pytest.mark.site

GALLERY = "auto_examples"
TUTORIAL = f"{GALLERY}/refinement/plot_real_world_refinement.html"
SUCCESS_CRITERIA = 7
HANG_GUARD_S = 3600


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: List[str] = []
        self.links: List[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"])
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])


def parse(page: Path) -> _Links:
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def local(target: str) -> bool:
    return not re.match(r"^(https?:|data:|mailto:|#)", target)


def resolve(page: Path, target: str) -> Path:
    return (page.parent / target.split("#")[0].split("?")[0]).resolve()


def find_page(site_dir: Path, name: str) -> Path:
    """The one built page called ``name`` (e.g. ``plot_tutorial_data.html``), wherever it lies."""
    pages = sorted(site_dir.rglob(name))
    assert len(pages) == 1, f"expected one page {name}, found {[str(p.relative_to(site_dir)) for p in pages]}"
    return pages[0]


def images_on(page: Path) -> List[Path]:
    """The local images a page shows, as files."""
    return [resolve(page, source) for source in parse(page).images if local(source)]


def example_pages(site_dir: Path) -> List[Path]:
    return sorted(p for p in (site_dir / GALLERY).rglob("plot_*.html"))


def printed(page: Path) -> str:
    """Everything the example printed, as the built page shows it (sphinx-gallery embeds each
    code block's stdout in a ``sphx-glr-script-out`` block)."""
    blocks = re.findall(r'<div class="sphx-glr-script-out[^"]*"><div class="highlight"><pre>(.*?)</pre>',
                        page.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, f"{page.name} shows no printed output"
    return "\n".join(html.unescape(re.sub(r"<[^>]+>", "", block)) for block in blocks)


def number(page: Path, pattern: str) -> float:
    """The number the example printed where ``pattern`` (a regex with one group) matches."""
    found = re.search(pattern, printed(page))
    assert found, f"{page.name} printed no line matching {pattern!r}"
    return float(found.group(1))


def numbers(page: Path, pattern: str) -> Dict[str, List[float]]:
    """Every match of ``pattern`` (first group: a name, the others: numbers), by name."""
    return {found[0]: [float(value) for value in found[1:]] for found in re.findall(pattern, printed(page))}


@pytest.mark.parametrize("page", ["index.html", "api.html", "install.html", "cli.html", "conventions.html",
                                  "physics.html",
                                  "differentiable_parameters.html", "performance.html", "refinement.html",
                                  f"{GALLERY}/index.html", "sg_execution_times.html", TUTORIAL,
                                  f"{GALLERY}/refinement/plot_noise_and_error_bars.html",
                                  f"{GALLERY}/refinement/plot_capture_range.html",
                                  f"{GALLERY}/extensions/plot_rotation_series.html",
                                  f"{GALLERY}/refinement/plot_geometry_refinement.html",
                                  f"{GALLERY}/serial/plot_modelling_every_pixel.html",
                                  f"{GALLERY}/serial/plot_cluster.html"])
def test_page_exists(site_dir, page):
    assert (site_dir / page).is_file(), f"{page} is missing from the built site"


def test_api_reference_has_a_page_per_class(site_dir):
    for name in ("nanobrag_torch.config.CrystalConfig", "nanobrag_torch.simulator.Simulator",
                 "nanobrag_torch.models.detector.Detector", "nanobrag_torch.io.hkl.read_hkl_file"):
        page = site_dir / "generated" / f"{name}.html"
        assert page.is_file(), f"no API page for {name}"
        assert "Parameters" in page.read_text(encoding="utf-8") or "Returns" in page.read_text(encoding="utf-8")


def test_every_image_resolves(site_dir):
    missing = []
    for page in site_dir.rglob("*.html"):
        for source in parse(page).images:
            if local(source) and not resolve(page, source).is_file():
                missing.append(f"{page.relative_to(site_dir)}: {source}")
    assert not missing, "images referenced but not built:\n" + "\n".join(missing)


def test_gallery_has_examples(site_dir):
    pages = example_pages(site_dir)
    assert len(pages) >= 5, f"only {len(pages)} example pages"
    sections = {p.parent.name for p in pages}
    assert {"getting_started", "detector_geometry", "refinement", "serial", "field", "gradients",
            "extensions"} <= sections


def test_each_example_offers_valid_py_and_ipynb_downloads(site_dir):
    for page in example_pages(site_dir):
        downloads = [resolve(page, href) for href in parse(page).links if href.endswith((".py", ".ipynb"))
                     and local(href)]
        suffixes = {path.suffix for path in downloads}
        assert {".py", ".ipynb"} <= suffixes, f"{page.name} lacks a .py or .ipynb download"
        for path in downloads:
            assert path.is_file(), f"{page.name} links a missing download {path}"
            if path.suffix == ".ipynb":
                notebook = nbformat.read(path, as_version=4)
                nbformat.validate(notebook)
                assert any(cell.cell_type == "code" for cell in notebook.cells)


def test_execution_times_are_reported(site_dir):
    text = (site_dir / "sg_execution_times.html").read_text(encoding="utf-8")
    for page in example_pages(site_dir):
        assert page.stem in text, f"no execution time for {page.stem}"


def test_tutorial_data_example_shows_its_figures_and_the_cell(site_dir):
    page = find_page(site_dir, "plot_tutorial_data.html")
    figures = [path for path in images_on(page) if path.suffix == ".png"]
    assert len(figures) >= 2, f"{page.name} shows {len(figures)} figures"
    assert "a = 26.75 Å, b = 31.31 Å, c = 33.67 Å" in page.read_text(encoding="utf-8")


def test_tutorial_page_shows_figure_and_gif(site_dir):
    page = site_dir / TUTORIAL
    images = images_on(page)
    assert any(path.suffix == ".png" for path in images), "the tutorial page shows no PNG figure"
    gifs = [path for path in images if path.suffix == ".gif"]
    assert gifs, "the tutorial page does not embed the refinement GIF"
    with Image.open(gifs[0]) as gif:
        assert gif.n_frames > 1, f"{gifs[0].name} has {gif.n_frames} frame"


def test_tutorial_passes_every_correctness_criterion(site_dir):
    """The results table ("criterion | target | result | verdict"): seven criteria, every
    correctness criterion met; the runtime depends on the machine that built the page, and
    is only reported. The page shows no test-report residue."""
    page = site_dir / TUTORIAL
    criteria = re.findall(r"(?m)^(.+?)\s+\|\s+(.+?)\s+\|\s+(.+?)\s+\|\s+(met|not met)$", printed(page))
    assert len(criteria) == SUCCESS_CRITERIA, f"{page.name} printed {len(criteria)} success criteria: {criteria}"
    runtime = [name for name, _, _, _ in criteria if name.startswith("runtime")]
    assert len(runtime) == 1, f"{page.name}: no runtime criterion among {criteria}"
    failed = [name for name, _, _, verdict in criteria if verdict == "not met" and not name.startswith("runtime")]
    assert not failed, f"{page.name}: failed success criteria: {failed}"
    for name, goal, found, verdict in criteria:
        if name.startswith("runtime") and verdict == "not met":
            warnings.warn(f"{page.name}: {name} {found} (target {goal}) on this machine (reported, not a failure)",
                          stacklevel=1)
    text = printed(page)
    for residue in ("[PASS]", "[FAIL]", "====", "Figure saved to", "runtime so far", "specification"):
        assert residue not in text, f"{page.name} prints {residue!r}"


def test_tutorial_shows_the_command_it_simulates_and_an_interactive_animation(site_dir):
    """The nanoBragg command at the top is the still the page simulates (mosaic 0.2°, five
    domains), and the animation is embedded as a player beside the GIF."""
    text = (site_dir / TUTORIAL).read_text(encoding="utf-8")
    command = re.sub(r"<[^>]+>", "", text[:text.find("Set-up")])
    for flag in ("-mosaic 0.2", "-mosaic_domains 5", "-phisteps 1"):
        assert flag in command, f"the tutorial's command does not say {flag}"
    assert "sphx-glr-animation" in text, "the tutorial embeds no interactive animation"


def test_tutorial_gif_fits_the_page_and_has_one_palette(site_dir):
    """The GIF's frames are at most a page column wide (1000 px) and all its frames together
    use at most 256 colours: one palette for the whole GIF, not one per frame."""
    gif_path = [path for path in images_on(site_dir / TUTORIAL) if path.suffix == ".gif"][0]
    colours = set()
    with Image.open(gif_path) as gif:
        assert gif.width <= 1000, f"{gif_path.name} is {gif.width} px wide"
        for index in range(gif.n_frames):
            gif.seek(index)
            colours.update(colour for _, colour in gif.convert("RGB").getcolors(maxcolors=2 ** 24))
    assert len(colours) <= 256, f"{gif_path.name}'s frames use {len(colours)} colours together"


def test_no_page_loads_a_remote_script(site_dir):
    remote = [f"{page.relative_to(site_dir)}: {source}" for page in site_dir.rglob("*.html")
              for source in re.findall(r'<script[^>]*\ssrc="([^"]+)"', page.read_text(encoding="utf-8"))
              if re.match(r"^(https?:)?//", source)]
    assert not remote, "pages load remote scripts:\n" + "\n".join(remote[:20])


def test_pages_with_math_load_a_local_mathjax(site_dir):
    page = site_dir / "physics.html"
    text = page.read_text(encoding="utf-8")
    assert "math notranslate" in text, "physics.html has no math"
    sources = [s for s in re.findall(r'<script[^>]*\ssrc="([^"]+)"', text) if "mathjax" in s.lower()]
    assert sources, "physics.html loads no MathJax"
    for source in sources:
        assert local(source) and resolve(page, source).is_file(), f"physics.html loads MathJax from {source}"


def test_math_typesets_offline_in_a_browser(site_dir, tmp_path):
    """A headless browser, with no network, typesets the physics page's equations."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium to load the page with")
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--proxy-server=127.0.0.1:9",
                             f"--user-data-dir={tmp_path}", "--virtual-time-budget=15000", "--dump-dom",
                             (site_dir / "physics.html").resolve().as_uri()],
                            capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert "mjx-container" in result.stdout, f"no typeset math in physics.html:\n{result.stderr[-2000:]}"


def test_tutorial_refinement_reaches_the_truth_to_1e4_degrees(site_dir):
    """The library's refinement on the noise-free target ends within 1e-4° of the truth in both
    parameters (the results table's last column)."""
    page = site_dir / TUTORIAL
    errors = numbers(page, r"(phi_start_deg|mosaic_spread_deg)\s+\|[^|]+\|[^|]+\|[^|]+\|\s+(\S+)")
    assert set(errors) == {"phi_start_deg", "mosaic_spread_deg"}, f"{page.name}: results table not found: {errors}"
    for name, (error,) in errors.items():
        assert error < 1e-4, f"{page.name}: {name} ends {error:.2e}° from the truth"


# ------------------------------------------------------------------------------------------
# What each example printed: the checks that protect what the example shows. Identities are
# checked in float64 at a tolerance float64 rounding guarantees on any CPU (the same
# identities are re-derived without a docs build in tests/test_gallery_identities.py).

FLOAT64_IDENTITY = 1e-11


def test_first_pattern_scales_with_the_crystal_size(site_dir):
    page = find_page(site_dir, "plot_first_pattern.html")
    total = number(page, r"total ratio N=10 / N=5: (\S+)")
    peak = number(page, r"peak ratio  N=10 / N=5: (\S+)")
    assert abs(total - 8) < 0.4, f"{page.name}: photons of N=10 over N=5 = {total}, expected 8 (N³)"
    assert 32 < peak <= 64.5, f"{page.name}: peak of N=10 over N=5 = {peak}, expected at most 64 (N⁶)"


def test_conventions_put_the_beam_on_the_chosen_pixel_and_agree(site_dir):
    page = find_page(site_dir, "plot_conventions.html")
    names = ("MOSFLM", "DENZO", "XDS", "DIALS", "ADXV")
    beams = numbers(page, r"(?m)^(MOSFLM|DENZO|XDS|DIALS|ADXV)\s+\S+\s+\S+\s+-.*\((\S+), (\S+)\)$")
    for name in names:
        assert beams.get(name) == [50.0, 40.0], \
            f"{page.name}: {name} put the beam at {beams.get(name)}, not (50.0, 40.0)"
    differences = numbers(page, r"(MOSFLM|DENZO|XDS|DIALS|ADXV)\s+max \|image − MOSFLM\| / max: (\S+)\s+"
                                r"mirrored about the beam row: (\S+)")
    assert set(differences) == set(names), f"{page.name} compared {sorted(differences)}"
    for name, (same, mirrored) in differences.items():
        if name == "ADXV":
            assert mirrored < FLOAT64_IDENTITY, f"{page.name}: ADXV mirrored differs from MOSFLM by {mirrored:.1e}"
            assert same > 0.1, f"{page.name}: ADXV unmirrored equals MOSFLM ({same:.1e}); it must be mirrored"
        else:
            assert same < FLOAT64_IDENTITY, f"{page.name}: {name} differs from MOSFLM by {same:.1e}"


def test_beam_pivot_keeps_the_beam_on_its_pixel(site_dir):
    page = find_page(site_dir, "plot_rotations_and_pivots.html")
    rows = re.findall(r"(BEAM|SAMPLE)\s+(\d+)\s+\(\s*(\S+),\s*(\S+)\)", printed(page))
    beam = {float(twotheta): (float(f), float(s)) for pivot, twotheta, f, s in rows if pivot == "BEAM"}
    sample = {float(twotheta): (float(f), float(s)) for pivot, twotheta, f, s in rows if pivot == "SAMPLE"}
    assert set(beam) == set(sample) == {0.0, 20.0, 40.0}, f"{page.name} printed {rows}"
    assert set(beam.values()) == {(50.5, 50.5)}, f"{page.name}: BEAM pivot moved the beam: {beam}"
    assert sample[0.0] == (50.5, 50.5) and sample[40.0][1] < 0, f"{page.name}: SAMPLE pivot: {sample}"


def test_oscillation_is_the_mean_of_its_stills_and_converges(site_dir):
    page = find_page(site_dir, "plot_oscillation.html")
    difference = number(page, r"float64: max \|mean of stills − oscillation\| / max = (\S+)")
    assert difference < FLOAT64_IDENTITY, f"{page.name}: float64 oscillation vs mean of stills {difference:.1e}"
    change = number(page, r"40 → 80 steps changes the total by (\S+) %")
    assert change < 1.0, f"{page.name}: 40 → 80 phi steps still change the total by {change} %"


def test_misset_refinement_recovers_the_angles(site_dir):
    page = find_page(site_dir, "plot_refine_misset.html")
    found = re.search(r"final errors \(°\): (\S+), (\S+), (\S+)", printed(page))
    assert found, f"{page.name} printed no final errors"
    errors = [float(value) for value in found.groups()]
    assert max(errors) < 0.01, f"{page.name}: misset errors {errors}° (expected < 0.01°)"


def test_gradients_agree_with_finite_differences(site_dir):
    page = find_page(site_dir, "plot_gradient_verification.html")
    table = numbers(page, r"(distance_mm|cell_a|phi_start_deg|mosaic_spread_deg|wavelength_A)\s+\S+\s+\S+\s+"
                          r"\S+\s+\S+\s+(\S+)")
    assert len(table) == 5, f"{page.name} printed {table}"
    for name, (error,) in table.items():
        assert error < 1e-5, f"{page.name}: autograd vs central difference for {name}: {error:.1e}"
    best = number(page, r"best agreement: (\S+) at h")
    assert best < 1e-7, f"{page.name}: best finite-difference agreement {best:.1e}"
    assert re.search(r"gradcheck over .*: True", printed(page)), f"{page.name}: gradcheck did not pass"


def test_capture_range_library_reaches_the_truth_from_every_start_of_the_map(site_dir):
    """refine() reaches phi within 1e-3° from every start within ±3° of the map (it prints
    errors near 1e-7°, single-precision rounding), and the map has both methods at every start."""
    page = find_page(site_dir, "plot_capture_range.html")
    rows = re.findall(r"(?m)^(plain|refine)\s+([+-]\d+\.\d+)\s+(\d+\.\d+)\s+(\S+)\s+(\S+)$", printed(page))
    starts = {method: {(float(phi), float(mosaic)) for m, phi, mosaic, _, _ in rows if m == method}
              for method in ("plain", "refine")}
    assert len(starts["refine"]) >= 21 and starts["plain"] == starts["refine"], f"{page.name} printed {rows}"
    phis = {phi for phi, _ in starts["refine"]}
    assert min(phis) <= -3.0 and max(phis) >= 3.0, f"{page.name}: starting phi only {sorted(phis)}"
    assert len({mosaic for _, mosaic in starts["refine"]}) >= 3, f"{page.name}: fewer than three starting mosaics"
    missed = [(phi, mosaic, float(error)) for method, phi, mosaic, error, _ in rows
              if method == "refine" and abs(float(phi)) <= 3.0 and float(error) >= 1e-3]
    assert not missed, f"{page.name}: refine() ended ≥ 1e-3° from the truth from (phi, mosaic, error): {missed}"
    mosaics = [float(mosaic) for method, _, _, _, mosaic in rows if method == "refine"]
    assert max(abs(m - 0.2) for m in mosaics) < 1e-3, f"{page.name}: refined mosaic spreads {mosaics}"


def test_rotation_series_estimates_are_within_three_standard_errors(site_dir):
    page = find_page(site_dir, "plot_rotation_series.html")
    rows = re.findall(r"(?m)^(still|oscillation)\s+(phi_start_deg|mosaic_spread_deg)\s+(\S+) ±\s+(\S+)\s+\S+$",
                      printed(page))
    truth = {"phi_start_deg": 0.0, "mosaic_spread_deg": 0.2}
    assert {(exposure, name) for exposure, name, _, _ in rows} == {
        (exposure, name) for exposure in ("still", "oscillation") for name in truth}, f"{page.name} printed {rows}"
    for exposure, name, estimate, stderr in rows:
        estimate, stderr = float(estimate), float(stderr)
        assert 0 < stderr < 0.05, f"{page.name}: {exposure} {name} standard error {stderr}"
        assert abs(estimate - truth[name]) < 3 * stderr, (
            f"{page.name}: {exposure} {name} = {estimate} ± {stderr}, more than 3 standard errors from {truth[name]}")
    correlations = numbers(page, r"(still|oscillation)\s+correlation\(phi, mosaic\) = (\S+)")
    assert set(correlations) == {"still", "oscillation"}, f"{page.name} printed correlations {correlations}"
    assert all(-1 <= value <= 1 for (value,) in correlations.values()), f"{page.name}: {correlations}"


ESTIMATE = r"(?m)^estimate (\S+): (\S+) ± (\S+) \(truth (\S+),"
"""A refinement page's line ``estimate NAME: VALUE ± STDERR (truth TRUTH, ...)``."""


def assert_estimates_within_error_bars(page: Path, names) -> None:
    """Every named parameter was printed, with a positive standard error, within 3 of them of the truth."""
    estimates = numbers(page, ESTIMATE)
    assert set(estimates) == set(names), f"{page.name} printed estimates of {sorted(estimates)}"
    for name, (value, stderr, truth) in estimates.items():
        assert stderr > 0, f"{page.name}: {name} has standard error {stderr}"
        assert abs(value - truth) < 3 * stderr, \
            f"{page.name}: {name} = {value} ± {stderr} is {(value - truth) / stderr:+.1f} standard errors from {truth}"


def test_noisy_refinement_reaches_the_cramer_rao_bound(site_dir):
    """One noisy image: the estimates lie within 3 standard errors of the truth, and the standard
    errors are within 20 % of the Cramér–Rao bound the page computes at the truth."""
    page = find_page(site_dir, "plot_noise_and_error_bars.html")
    names = ("crystal.phi_start_deg", "crystal.mosaic_spread_deg")
    assert_estimates_within_error_bars(page, names)
    bounds = numbers(page, r"(?m)^bound (\S+) +(\S+) +(\S+) +(\S+)$")
    assert set(bounds) == set(names), f"{page.name} printed bounds of {sorted(bounds)}"
    for name, (stderr, bound, _) in bounds.items():
        assert bound > 0 and abs(stderr / bound - 1) < 0.2, \
            f"{page.name}: {name}: standard error {stderr} against the Cramér–Rao bound {bound}"
    difference = number(page, r"same pixels as the full detector: max \|difference\| = (\S+) photons")
    assert difference < 1e-6, f"{page.name}: the cropped detector differs from the full one by {difference} photons"


def test_pulls_over_noise_images_are_unit_normal(site_dir):
    """The repeats: n ≥ 30 pulls (estimate − truth)/stderr per parameter have a mean within 3/√n
    (+0.05) of 0 and a standard deviation in [0.65, 1.4] (about 3 standard deviations of the
    sample standard deviation for 40 draws); the scatter of the estimates and the mean standard
    error are within those limits and within 20 % of the Cramér–Rao bound."""
    page = find_page(site_dir, "plot_noise_and_error_bars.html")
    names = {"crystal.phi_start_deg", "crystal.mosaic_spread_deg"}
    pulls = numbers(page, r"(?m)^pulls (\S+): mean (\S+), std (\S+) \((\d+) images\)$")
    assert set(pulls) == names, f"{page.name} printed pulls of {sorted(pulls)}"
    for name, (mean, spread, count) in pulls.items():
        assert count >= 30, f"{page.name}: only {count:.0f} noise images"
        assert abs(mean) < 3 / count ** 0.5 + 0.05, f"{page.name}: {name}: pulls have mean {mean}"
        assert 0.65 <= spread <= 1.4, f"{page.name}: {name}: pulls have standard deviation {spread}"
    spreads = numbers(page, r"(?m)^spread (\S+): std of estimates (\S+), mean standard error (\S+), "
                            r"Cramér–Rao bound (\S+)$")
    assert set(spreads) == names, f"{page.name} printed spreads of {sorted(spreads)}"
    for name, (scatter, stderr, bound) in spreads.items():
        assert abs(stderr / bound - 1) < 0.2, f"{page.name}: {name}: mean standard error {stderr}, bound {bound}"
        assert 0.65 <= scatter / bound <= 1.4, f"{page.name}: {name}: estimates scatter by {scatter}, bound {bound}"


def test_geometry_refinement_recovers_every_parameter(site_dir):
    """Seven parameters from a wrong start: converged, each within 3 standard errors of the truth;
    the printed correlation matrix is one (unit diagonal, symmetric to the printed digits, entries
    in [−1, 1]) and, as the page says, has no strong correlation (all below 0.5 in size)."""
    page = find_page(site_dir, "plot_geometry_refinement.html")
    names = [f"crystal.misset_deg[{i}]" for i in range(3)] + [
        "crystal.mosaic_spread_deg", "detector.distance_mm", "detector.beam_center_f", "detector.beam_center_s"]
    assert re.search(r"(?m)^converged: True$", printed(page)), f"{page.name}: the refinement did not converge"
    assert_estimates_within_error_bars(page, names)
    rows = re.findall(r"(?m)^correlation ((?:crystal|detector)\.\S+) +((?:\S+ ?)+)$", printed(page))
    assert [name for name, _ in rows] == names, f"{page.name} printed correlation rows {[n for n, _ in rows]}"
    matrix = [[float(value) for value in row.split()] for _, row in rows]
    for i, row in enumerate(matrix):
        assert len(row) == len(names), f"{page.name}: correlation row {names[i]} has {len(row)} entries"
        assert row[i] == 1.0, f"{page.name}: correlation of {names[i]} with itself is {row[i]}"
        for j, value in enumerate(row):
            assert -1.0 <= value <= 1.0 and abs(value - matrix[j][i]) <= 2e-3, \
                f"{page.name}: correlation {names[i]} / {names[j]} = {value}, transposed {matrix[j][i]}"
            if i != j:
                assert abs(value) < 0.5, f"{page.name}: {names[i]} / {names[j]} correlated by {value}"


def test_modelling_every_pixel_beats_summation_at_every_number_of_shots(site_dir):
    """As the page says: at each number of shots refine_dataset's R to the truth is below that
    of the summation handed the true orientations and scales, and on the first four shots by a
    factor of ten and more, with every orientation within 0.05° of the truth."""
    page = find_page(site_dir, "plot_modelling_every_pixel.html")
    text = printed(page)
    blocks = re.findall(r"(?m)^(\d+) shots:\n((?:  .*\n?)+)", text)
    assert [int(n) for n, _ in blocks] == [4, 8, 16], f"{page.name} printed subsets {[n for n, _ in blocks]}"
    for n, block in blocks:
        r = {method: float(value) for method, value in re.findall(r"(?m)^  (\S.*?\S) +CC \S+ +R (\S+)", block)}
        summation, refined = r["summation, true orientations and scales"], r["refine_dataset, start orientations"]
        assert refined < summation, f"{page.name}: {n} shots: R {refined} refined, {summation} summed"
        if n == "4":
            assert 10 * refined <= summation, f"{page.name}: 4 shots: R {refined} refined, {summation} summed"
            assert re.search(r"4 of 4 within 0\.05°", block), f"{page.name}: an orientation of 4 shots is lost"
    assert number(page, r"mean squared residual in the three windows: (\S+)") < 2


def test_cluster_gives_the_amplitudes_of_this_process(site_dir):
    page = find_page(site_dir, "plot_cluster.html")
    assert "same reflections measured: True" in printed(page)
    assert "same shot statuses: True" in printed(page)
    assert number(page, r"largest relative difference of F: (\S+)") < 1e-3
    assert number(page, r"largest difference of a refined reciprocal vector: (\S+)") < 1e-9


def test_site_cites_no_outside_spec(site_dir):
    """The site explains the physics itself (the physics page); it never points readers to a
    specification document they do not have: not in the user guide, the gallery, nor the API
    pages the docstrings render to."""
    pages = list(site_dir.glob("*.html")) + sorted((site_dir / "generated").glob("*.html")) + example_pages(site_dir)
    citing = [p.name for p in pages if re.search(r"spec\s*§", p.read_text(encoding="utf-8"))]
    assert not citing, f"pages citing 'spec §': {citing}"


def test_physics_page_has_stable_section_labels(site_dir):
    text = (site_dir / "physics.html").read_text(encoding="utf-8")
    for label in ("physics-sum", "physics-units", "physics-lattice-factor", "physics-structure-factor",
                  "physics-solid-angle", "physics-polarization", "physics-capture", "physics-water",
                  "physics-mosaic", "physics-conventions", "physics-c-quirks"):
        assert f'id="{label}"' in text, f"physics.html has no section labelled {label}"


def test_examples_and_api_pages_point_at_each_other(site_dir):
    first = find_page(site_dir, "plot_first_pattern.html")
    text = first.read_text(encoding="utf-8")
    assert "API on this page" in text, f"{first.name} does not list the API it uses"
    for target in ("nanobrag_torch.simulator.Simulator.html", "nanobrag_torch.plotting.show_detector_image.html"):
        assert target in text, f"{first.name} does not link {target} in its API list"
    api = site_dir / "generated" / "nanobrag_torch.simulator.Simulator.html"
    assert "Examples using" in api.read_text(encoding="utf-8") and "plot_first_pattern" in api.read_text(
        encoding="utf-8"), f"{api.name} does not list the examples that use it"


def test_examples_teach_no_environment_workarounds(site_dir):
    for page in example_pages(site_dir):
        source = [resolve(page, href) for href in parse(page).links if href.endswith(".py") and local(href)][0]
        text = source.read_text(encoding="utf-8")
        for workaround in ("KMP_DUPLICATE_LIB_OK", "NANOBRAGG_DISABLE_COMPILE", "os.environ"):
            assert workaround not in text, f"{source.name} sets {workaround}"


def notebook_downloads(site_dir: Path) -> List[Path]:
    return sorted({path.resolve() for path in (site_dir / "_downloads").rglob("plot_*.ipynb")})


def test_downloaded_notebooks_run_top_to_bottom_outside_the_checkout(site_dir, tmp_path):
    """Each notebook's code cells, run in order in a fresh interpreter in an empty folder,
    finish without error: the data come from the installed package, not from a checkout.
    The timeout only guards against a hang: it is far above any machine's run time, so that
    a slow or busy machine never fails the check."""
    notebooks = notebook_downloads(site_dir)
    assert len(notebooks) >= 5
    for notebook_path in notebooks:
        notebook = nbformat.read(notebook_path, as_version=4)
        code = "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        folder = tmp_path / notebook_path.stem
        folder.mkdir()
        script = folder / "notebook.py"
        script.write_text(code, encoding="utf-8")
        result = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True,
                                env={**os.environ, "MPLBACKEND": "Agg"}, timeout=HANG_GUARD_S)
        assert result.returncode == 0, f"{notebook_path.name} failed:\n{result.stderr[-2000:]}"


def _top_bar(page: Path) -> str:
    found = re.search(r'<ul class="bd-navbar-elements navbar-nav">(.*?)</ul>', page.read_text(encoding="utf-8"),
                      flags=re.S)
    assert found, f"{page.name} has no top bar"
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


def test_landing_page_shows_a_picture_cards_and_the_top_bar(site_dir):
    page = site_dir / "index.html"
    assert any(path.suffix == ".png" for path in images_on(page)), "the landing page shows no picture"
    assert page.read_text(encoding="utf-8").count("sd-card ") >= 4, "the landing page has fewer than four cards"
    bar = _top_bar(page)
    for entry in ("User guide", "Tutorials", "API reference"):
        assert entry in bar, f"the top bar lacks {entry}: {bar.split()}"
    assert "Computation times" not in bar, "the top bar shows Computation times"


def test_physics_page_draws_the_geometry(site_dir):
    page = site_dir / "physics.html"
    assert any(path.suffix == ".png" for path in images_on(page)), "physics.html shows no geometry figure"
