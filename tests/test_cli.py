"""The nanobragg command: option matching, C's input quirks, auto rules and one-line errors."""

import io
import os

import pytest

import numpy as np

from nanobrag_torch.cli import main, parse_args, run, scan_arguments
from nanobrag_torch.cli.options import OPTIONS, library_message
from nanobrag_torch.cli.plan import PHYSICAL_BOUNDS
from nanobrag_torch.datasets import tutorial_data_paths
from nanobrag_torch.io.smv import write_smv
from nanobrag_torch.config import (BeamConfig, ConfigError, CrystalConfig, CrystalShape, DetectorConfig,
                                   DetectorConvention, DetectorPivot, NoiseConfig, field_rule)

BASE = ["-cell", "70", "80", "90", "75", "85", "95", "-default_F", "100", "-N", "5", "-lambda", "1.0",
        "-distance", "100", "-pixel", "0.1", "-detpixels", "16", "-oversample", "1"]


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path, monkeypatch):
    """Every test runs in an empty folder (no stale Fdump.bin)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan_for(*extra):
    return parse_args(BASE + list(extra))


def error_of(argv, capsys):
    status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1, err
    assert err[0].startswith("nanobragg: error: ")
    return err[0]


# ----------------------------------------------------------------- substring matching quirks
def test_twotheta_axis_also_sets_twotheta_like_c():
    plan = plan_for("-twotheta", "20", "-twotheta_axis", "0", "0", "-1")
    assert plan.detector.detector_twotheta_deg == 0.0
    assert plan.detector.detector_convention is DetectorConvention.CUSTOM
    assert plan.detector.detector_pivot is DetectorPivot.SAMPLE
    assert any("-twotheta_axis also acts as -twotheta" in w for w in plan.warnings)
    reverse = plan_for("-twotheta_axis", "0", "0", "-1", "-twotheta", "20")
    assert reverse.detector.detector_twotheta_deg == 20.0


def test_misset_seed_also_sets_misset_angles_like_c():
    plan = plan_for("-misset_seed", "7", "-noprogress", "-nopgm")
    assert tuple(plan.crystal.misset_deg) == (7.0, 0.0, 0.0)
    assert any("-misset_seed also acts as -misset" in w for w in plan.warnings)


def test_aliases_by_substring():
    raw, warnings = scan_arguments(["-matrix", "A.mat", "-wavelength", "1.5", "-adcoffset", "10",
                                    "-mosaicity", "0.3", "-detector_thicksteps", "3", "-pix0_vector_mm",
                                    "1", "2", "3", "-detpixels_x", "20", "-detpixels_y", "30"])
    assert raw.matfile == "A.mat" and raw.wavelength_A == 1.5 and raw.adc == 10.0
    assert raw.mosaic_spread == 0.3 and raw.detector_thicksteps == 3
    assert raw.convention is DetectorConvention.CUSTOM and raw.pix0_given
    assert (raw.fpixels, raw.spixels) == (20, 30)
    assert warnings == []


def test_pix0_vector_is_discarded_with_a_warning():
    plan = plan_for("-pix0_vector_mm", "-216.3", "215.2", "-230.2")
    assert plan.detector.pix0_override_m is None
    assert plan.detector.detector_convention is DetectorConvention.CUSTOM
    assert any("-pix0_vector values are ignored" in w for w in plan.warnings)


def test_non_unit_odet_is_regenerated_from_fast_cross_slow():
    plan = plan_for("-fdet_vector", "0", "0", "1", "-sdet_vector", "0", "-1", "0",
                    "-odet_vector", "2", "0", "0")
    assert plan.detector.custom_odet_vector == pytest.approx((1.0, 0.0, 0.0))
    assert any("odet vector has length 2" in w for w in plan.warnings)
    exact = plan_for("-odet_vector", "1", "0", "0")
    assert not any("odet" in w for w in exact.warnings)


def test_curved_det_as_last_argument_is_ignored():
    plan = plan_for("-curved_det")
    assert not plan.detector.curved_detector
    assert any("-curved_det is the last argument" in w for w in plan.warnings)
    assert plan_for("-curved_det", "-nopgm").detector.curved_detector


def test_integer_options_truncate_like_atoi_with_a_warning():
    plan = plan_for("-N", "2.5")
    assert tuple(plan.crystal.N_cells) == (2, 2, 2)
    assert any("-N 2.5" in w and "using 2" in w for w in plan.warnings)


def test_interpolation_auto_from_the_raw_N():
    assert plan_for("-N", "2").crystal.interpolate is True
    assert plan_for().crystal.interpolate is False


def test_readme_spellings_that_c_ignores_are_errors(capsys):
    for flag in ("-detector_twotheta", "-hdiv", "-dispstep", "-detsize_x", "-xdet_vector"):
        message = error_of(BASE + [flag, "1"], capsys)
        assert f"unknown option '{flag}'" in message


# ----------------------------------------------------------------- conventions and pivots
def test_named_conventions_force_the_pivot():
    assert plan_for("-mosflm", "-twotheta", "20").detector.detector_pivot is DetectorPivot.BEAM
    assert plan_for("-xds", "-distance", "80").detector.detector_pivot is DetectorPivot.SAMPLE
    assert plan_for("-dials").detector.detector_pivot is DetectorPivot.SAMPLE
    custom = plan_for("-beam_vector", "1", "0", "0", "-Xbeam", "5", "-pivot", "sample")
    assert custom.detector.detector_pivot is DetectorPivot.SAMPLE
    custom = plan_for("-beam_vector", "1", "0", "0", "-twotheta", "5", "-Xbeam", "5")
    assert custom.detector.detector_pivot is DetectorPivot.BEAM


def test_later_named_convention_wins_over_custom_vectors():
    plan = plan_for("-fdet_vector", "0", "0", "1", "-xds")
    assert plan.detector.detector_convention is DetectorConvention.XDS
    assert plan.detector.custom_fdet_vector is None


def test_beam_centre_mapping_per_convention():
    mosflm = plan_for("-Xbeam", "5.5", "-Ybeam", "7.2")
    assert (mosflm.detector.beam_center_s, mosflm.detector.beam_center_f) == (5.5, 7.2)
    adxv = plan_for("-adxv", "-Xbeam", "5.5", "-Ybeam", "7.2")
    assert (adxv.detector.beam_center_f, adxv.detector.beam_center_s) == (5.5, 7.2)
    xds = plan_for("-xds", "-Xbeam", "5.5", "-ORGX", "50.5")
    assert xds.detector.beam_center_f == pytest.approx(5.0) and xds.detector.beam_center_s is None
    assert xds.header["Xbeam_mm"] == 5.5
    custom = plan_for("-beam_vector", "1", "0", "0", "-Xclose", "3")
    assert custom.detector.beam_center_f == 3.0


# ----------------------------------------------------------------- automatic choices
@pytest.mark.parametrize("flags, steps, library_osc, header_osc", [
    ([], 1, 0.0, 0.0),
    (["-phistep", "0.5"], 2, 1.0, 0.5),
    (["-osc", "2"], 2, 2.0, 2.0),
    (["-osc", "2", "-phistep", "0.3"], 7, 2.1, 2.0),
    (["-phisteps", "4"], 4, 1.0, 1.0),
    (["-phisteps", "4", "-phistep", "0.5"], 2, 1.0, 0.5),
])
def test_phi_auto_rules(flags, steps, library_osc, header_osc):
    plan = plan_for("-phi", "1", *flags)
    assert plan.crystal.phi_steps == steps
    assert plan.crystal.osc_range_deg == pytest.approx(library_osc)
    assert plan.header["osc_deg"] == pytest.approx(header_osc)


def test_mosaic_spread_alone_gives_ten_domains():
    plan = plan_for("-mosaic", "0.5")
    assert plan.crystal.mosaic_domains == 10
    assert plan_for("-mosaic_domains", "5").crystal.mosaic_domains == 1
    assert plan_for("-mosaic", "0.5", "-mosaic_domains", "3", "-mosaic_seed", "7").crystal.mosaic_seed == 7


def test_detector_thickness_reproduces_c_layer_spacing():
    plan = plan_for("-detector_thick", "450", "-detector_abs", "300", "-detector_thicksteps", "4")
    det = plan.detector
    assert det.detector_thicksteps == 4
    assert det.detector_thick_um / det.detector_thicksteps == pytest.approx(150.0)
    assert det.detector_abs_um == 300.0
    only_thick = plan_for("-detector_thick", "100").detector
    assert only_thick.detector_thicksteps == 2 and only_thick.detector_thick_um == pytest.approx(100.0)
    assert only_thick.detector_abs_um == 100.0


def test_sample_size_overrides_N_and_is_clipped_by_the_beam():
    plan = plan_for("-xtalsize", "0.2")
    assert any("clipping sample" in w for w in plan.warnings)
    na, nb, nc = plan.crystal.N_cells
    assert na == 28572  # ceil(0.2 mm / 70 Å)
    assert nb in (12500, 12501) and nc in (11111, 11112)  # y and z clipped to the 0.1 mm beam
    assert plan.crystal.interpolate is False  # judged from the raw -N 5


def test_divergence_and_dispersion_pass_raw_values():
    beam = plan_for("-divergence", "4", "-divsteps", "3").beam
    assert (beam.hdivrange_mrad, beam.vdivrange_mrad, beam.hdivsteps, beam.vdivsteps) == (4.0, 4.0, 3, 3)
    assert beam.hdivstep_mrad is None
    assert plan_for().beam.hdivrange_mrad is None


def test_fluence_from_flux_overrides_fluence():
    beam = plan_for("-fluence", "1e20", "-flux", "1e12", "-exposure", "2", "-beamsize", "0.05").beam
    assert beam.fluence == pytest.approx(1e12 * 2 / (0.05e-3) ** 2)


def test_outputs_default_to_c_names_and_noise_switches():
    outputs = plan_for().outputs
    assert (outputs.floatfile, outputs.intfile, outputs.pgmfile, outputs.noisefile) == (
        "floatimage.bin", "intimage.img", "image.pgm", "noiseimage.img")
    assert outputs.fdump is None
    assert plan_for("-nonoise", "-nopgm").outputs.noisefile is None
    assert plan_for("-nonoise", "-noisefile", "n.img").outputs.noisefile == "n.img"
    assert plan_for("-nopgm", "-pgmscale", "2").outputs.pgmfile == "image.pgm"


def test_quirk_warnings_for_physics_quirks():
    warnings = plan_for("-phi", "0", "-osc", "3", "-phisteps", "3", "-water", "1", "-oversample_omega").warnings
    assert any("phi starts at exactly 0" in w for w in warnings)
    assert any("-oversample_omega" in w for w in warnings)
    assert any("-water" in w for w in warnings)
    assert plan_for().warnings == []


def test_shapes_and_seeds():
    plan = plan_for("-gauss_xtal", "-seed", "12345", "-adc", "10", "-scale", "2")
    assert plan.crystal.shape is CrystalShape.GAUSS
    assert plan.noise.seed == 12345 and plan.noise.adc_offset_adu == 10 and plan.noise.intfile_scale == 2


# ----------------------------------------------------------------- errors: one line, status 2
@pytest.mark.parametrize("argv, expected", [
    (BASE + ["-bogus"], "unknown option '-bogus'"),
    (BASE + ["-distance"], "-distance needs 1 value, got 0"),
    (BASE + ["-distance", "far"], "-distance needs a number, got 'far'"),
    (BASE + ["-fdet_vector", "1", "0"], "-fdet_vector needs 3 values, got 2"),
    (BASE + ["-floatfile", "-nopgm"], "-floatfile needs a file name, got the option '-nopgm'"),
    (BASE + ["stray"], "unexpected argument 'stray'"),
    (BASE + ["-pixel", "0"], "-pixel 0 is not physical: the pixel size must be > 0 mm"),
    (BASE + ["-lambda", "0"], "-lambda 0 is not physical: the wavelength must be > 0 Å"),
    (BASE + ["-energy", "-100"], "-energy -100 is not physical: the wavelength must be > 0 Å"),
    (BASE + ["-close_distance", "0"], "-close_distance 0 is not physical: the distance must be > 0 mm"),
    (BASE[:-4] + ["-detsize", "0.01"], "the detector has 0 x 0 pixels: -detsize 0.01 x 0.01 mm is less than half a pixel"),
    (BASE + ["-detpixels", "100000"], "the detector has 100000 x 100000 pixels, more than 2147483647"),
    (["-default_F", "100", "-N", "5"], "no crystal: give -cell"),
    (["-cell", "70", "80", "90", "90", "90", "90"], "no structure factors"),
    (BASE + ["-mat", "missing.mat"], "-mat missing.mat: no such file"),
    (BASE + ["-hkl", "missing.hkl"], "-hkl missing.hkl: no such file"),
    (BASE + ["-sourcefile", "missing.txt"], "-sourcefile missing.txt: no such file"),
    (BASE + ["-roi", "50", "60", "0", "5"], "-roi 50 60 0 5 selects no pixel"),
    (BASE + ["-cell", "20", "20", "20", "60", "60", "120"], "-cell: CrystalConfig.cell_gamma = 120.0 is invalid: with "
                                                            "cell_alpha = 60 and cell_beta = 60 the angles make no unit cell"),
    (BASE + ["-floatfile", "no/such/folder/f.bin"], "cannot write no/such/folder/f.bin: folder"),
    (BASE + ["-intfile", ""], "-intfile needs a file name, got ''"),
    (BASE + ["-default_F", "1e200"], "pixel (fast 0, slow 0) of the image is inf photons, which single-precision files "
                                     "cannot hold"),
    (BASE + ["-seed", "99999999999999999999"], "-seed: NoiseConfig.seed = 99999999999999999999 is invalid: must be "
                                               "an integer >= -4611686018427387904 and <= 4611686018427387904 "
                                               "(±2**62, the range of the noise generator's 64-bit arithmetic)"),
    (BASE + ["-floatfile", "intimage.img"], "-floatfile intimage.img and -intfile intimage.img are the same file"),
    (BASE + ["-beam_vector", "0", "0", "1"], "the beam runs parallel to the detector plane"),
])
def test_errors_are_one_line_with_status_2(argv, expected, capsys, empty_cwd):
    message = error_of(argv, capsys)
    assert expected in message
    assert os.listdir(empty_cwd) == []


def test_an_output_named_as_an_input_is_refused_and_the_input_kept(capsys, empty_cwd):
    matrix = tutorial_data_paths().matrix.read_bytes()
    (empty_cwd / "A.mat").write_bytes(matrix)
    message = error_of(["-mat", "A.mat", "-default_F", "1", "-detpixels", "4", "-intfile", "A.mat"], capsys)
    assert "-intfile A.mat is the input file of -mat A.mat" in message
    assert os.listdir(empty_cwd) == ["A.mat"] and (empty_cwd / "A.mat").read_bytes() == matrix


# Every value at or below zero that has no physical meaning is an error naming it as given; where
# nanoBragg C silently does something else with it, the message says what.
@pytest.mark.parametrize("extra, expected", [
    (["-detpixels", "0"], "-detpixels 0 is not physical: a pixel count must be >= 1 (nanoBragg C would silently "
                          "take the size from -detsize, 102.4 mm: 1024 pixels)"),
    (["-detpixels_y", "-5"], "-detpixels_y -5 is not physical: a pixel count must be >= 1 (nanoBragg C would "
                             "silently render no pixel)"),
    (["-N", "0"], "-N 0 is not physical: the number of unit cells must be >= 1 (nanoBragg C would silently "
                  "use 1 cell)"),
    (["-Nc", "-2"], "-Nc -2 is not physical: the number of unit cells must be >= 1"),
    (["-distance", "-5"], "-distance -5 is not physical: the distance must be > 0 mm (nanoBragg C would silently "
                          "use 5 mm, its absolute value)"),
    (["-distance", "0"], "-distance 0 is not physical: the distance must be > 0 mm"),
    (["-mosaic", "0.5", "-mosaic_domains", "0"], "-mosaic_domains 0 is not physical: the number of mosaic domains "
                                                 "must be >= 1 (nanoBragg C would silently use 10 domains"),
    (["-phisteps", "0"], "-phisteps 0 is not physical: the number of phi steps must be >= 1 (nanoBragg C would "
                         "silently use 1 step)"),
    (["-osc", "3", "-phisteps", "-1"], "-phisteps -1 is not physical: the number of phi steps must be >= 1 "
                                       "(nanoBragg C would silently choose 2 steps itself"),
    (["-oversample", "0"], "-oversample 0 is not physical: the oversampling must be >= 1 and <= 1000 (nanoBragg C "
                           "would silently choose it from the crystal size"),
    (["-oversample", "1001"], "-oversample 1001 is not physical: the oversampling must be >= 1 and <= 1000"),
    (["-xtalsize", "-1"], "-xtalsize -1 is not physical: a crystal size must be >= 0 mm"),
    (["-mosaic", "-1"], "-mosaic -1 is not physical: the mosaic spread must be >= 0 and <= 180 degrees (nanoBragg C "
                        "would silently ignore it: one domain, no mosaicity)"),
    (["-mosaic", "181"], "-mosaic 181 is not physical: the mosaic spread must be >= 0 and <= 180 degrees"),
    (["-N", "0.5"], "-N 0.5 is not physical: the number of unit cells must be >= 1 (nanoBragg C would silently "
                    "use 1 cell)"),
    (["-polar", "1.5"], "-polar 1.5 is not physical: the polarization factor must be >= -1 and <= 1"),
    (["-divsteps", "0"], "-divsteps 0 is not physical: the number of divergence steps must be >= 1"),
    (["-detector_abs", "-3"], "-detector_abs -3 is not physical: the attenuation depth must be > 0 µm"),
    (["-scale", "0"], "-scale 0 is not physical: the integer-image scale must be > 0"),
    (["-energy", "1e-320"], "-energy 1e-320 is not physical: the wavelength must be finite and > 0 Å"),
])
def test_non_physical_values_are_errors_saying_what_c_would_do(extra, expected, capsys, empty_cwd):
    assert error_of(BASE + extra, capsys).startswith(f"nanobragg: error: {expected}")
    assert os.listdir(empty_cwd) == []


CONFIG_FIELD_OF_OPTION = {
    "pixel": (DetectorConfig, "pixel_size_mm"), "fpixels": (DetectorConfig, "fpixels"),
    "spixels": (DetectorConfig, "spixels"), "distance": (DetectorConfig, "distance_mm"),
    "close_distance": (DetectorConfig, "close_distance_mm"), "wavelength_A": (BeamConfig, "wavelength_A"),
    "Na": (CrystalConfig, "N_cells"), "Nb": (CrystalConfig, "N_cells"), "Nc": (CrystalConfig, "N_cells"),
    "mosaic_spread": (CrystalConfig, "mosaic_spread_deg"), "mosaic_domains": (CrystalConfig, "mosaic_domains"),
    "phisteps": (CrystalConfig, "phi_steps"), "oversample": (DetectorConfig, "oversample"),
    "detector_thick_um": (DetectorConfig, "detector_thick_um"),
    "detector_thicksteps": (DetectorConfig, "detector_thicksteps"), "detector_abs_um": (DetectorConfig, "detector_abs_um"),
    "dispersion": (BeamConfig, "dispersion_percent"), "dispsteps": (BeamConfig, "dispersion_steps"),
    "hdivrange": (BeamConfig, "hdivrange_mrad"), "vdivrange": (BeamConfig, "vdivrange_mrad"),
    "hdivstep": (BeamConfig, "hdivstep_mrad"), "vdivstep": (BeamConfig, "vdivstep_mrad"),
    "hdivsteps": (BeamConfig, "hdivsteps"), "vdivsteps": (BeamConfig, "vdivsteps"), "fluence": (BeamConfig, "fluence"),
    "flux": (BeamConfig, "flux"), "exposure": (BeamConfig, "exposure"), "beamsize_mm": (BeamConfig, "beamsize_mm"),
    "polar": (BeamConfig, "polarization_factor"), "water_um": (BeamConfig, "water_size_um"),
    "dmin": (BeamConfig, "dmin_A"), "fudge": (CrystalConfig, "fudge"), "intfile_scale": (NoiseConfig, "intfile_scale"),
}
"""The library config field each option with a config counterpart sets."""


@pytest.mark.parametrize("bound", PHYSICAL_BOUNDS, ids=lambda bound: bound.field)
def test_an_option_with_a_config_field_takes_the_fields_rule(bound):
    if bound.field in CONFIG_FIELD_OF_OPTION:
        assert bound.rule is field_rule(*CONFIG_FIELD_OF_OPTION[bound.field])
    else:
        assert bound.field in ("detsize_f", "detsize_s", "sample_mm", "phistep", "osc", "pgm_scale")


NUMERIC_FLAGS = sorted({o.key for o in OPTIONS if o.kind in ("float", "int", "cell", "misset", "number_or_inf")})


@pytest.mark.parametrize("flag", NUMERIC_FLAGS)
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999"])
def test_every_numeric_flag_refuses_nan_and_inf(flag, text, capsys, empty_cwd):
    if flag == "-detector_abs" and "inf" in text:
        return  # C's "absorb nothing", accepted
    option = next(o for o in OPTIONS if o.key == flag)
    message = error_of(BASE + [flag] + [text] * (1 if option.kind == "cell" else option.nargs), capsys)
    if flag == "-cell" and text.startswith("-"):
        assert message.startswith("nanobragg: error: -cell needs the cell")  # the cell stops at a '-'
    else:
        assert message == f"nanobragg: error: {flag} {text} is not a finite number"
    assert os.listdir(empty_cwd) == []


def test_header_values_are_checked_and_named_with_their_file(capsys, empty_cwd):
    header = {"HEADER_BYTES": "512", "SIZE1": "4", "SIZE2": "4", "PIXEL_SIZE": "0.1", "DISTANCE": "-7"}
    write_smv("in.img", np.zeros((4, 4), dtype=np.uint16), header)
    argv = ["-cell", "70", "80", "90", "90", "90", "90", "-default_F", "1", "-img", "in.img"]
    assert error_of(argv, capsys) == (
        "nanobragg: error: -img in.img header DISTANCE=-7 is not physical: the distance must be > 0 mm "
        "(nanoBragg C would silently use 7 mm, its absolute value)")
    for text in ("nan", "far"):
        write_smv("in.img", np.zeros((4, 4), dtype=np.uint16), {**header, "DISTANCE": text})
        assert error_of(argv, capsys) == (
            f"nanobragg: error: -img in.img: header DISTANCE={text} is not a finite number")
    assert sorted(os.listdir(empty_cwd)) == ["in.img"]


def test_library_message_maps_config_fields_and_names_files():
    assert library_message(ConfigError("CrystalConfig", "N_cells", 0, "must be > 0", "[1]")) == (
        "-N: CrystalConfig.N_cells[1] = 0 is invalid: must be > 0")
    assert library_message(ConfigError("CrystalConfig", "shape", "x", "must be a CrystalShape")) == (
        "CrystalConfig.shape = 'x' is invalid: must be a CrystalShape")
    assert library_message(FileNotFoundError(2, "No such file or directory", "a.hkl")) == (
        "[Errno 2] No such file or directory: 'a.hkl'")
    assert library_message(ValueError("a.hkl:3: expected four numbers\n 'h k l F'")) == (
        "a.hkl:3: expected four numbers 'h k l F'")


def test_unwritable_output_leaves_existing_files_untouched(capsys, empty_cwd):
    (empty_cwd / "float.bin").write_bytes(b"old")
    message = error_of(BASE + ["-floatfile", "float.bin", "-intfile", "gone/int.img"], capsys)
    assert "cannot write gone/int.img" in message
    assert (empty_cwd / "float.bin").read_bytes() == b"old"
    assert sorted(os.listdir(empty_cwd)) == ["float.bin"]


def test_output_path_that_is_a_directory(capsys, empty_cwd):
    (empty_cwd / "out").mkdir()
    assert "it is a directory" in error_of(BASE + ["-floatfile", "out"], capsys)


def test_singular_matrix_is_an_error(capsys, empty_cwd):
    (empty_cwd / "flat.mat").write_text("1 0 1\n0 1 1\n0 0 0\n")
    assert "-mat flat.mat" in error_of(["-mat", "flat.mat", "-default_F", "1"], capsys)


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("flags, stream, shown", [
    ([], io.StringIO, False),
    ([], Terminal, True),
    (["-progress"], io.StringIO, True),
    (["-noprogress"], Terminal, False),
])
def test_progress_bar_on_a_terminal_or_when_asked(flags, stream, shown, empty_cwd):
    err = stream()
    assert run(parse_args(BASE + ["-nonoise", "-nopgm"] + flags), out=io.StringIO(), err=err) == 0
    assert ("nanobragg: 100%" in err.getvalue() and "256/256" in err.getvalue()) is shown, err.getvalue()


def test_help_lists_options(capsys):
    assert main(["-h"]) == 0
    assert "-twotheta_axis" in capsys.readouterr().out
