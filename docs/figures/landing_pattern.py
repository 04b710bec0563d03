"""The landing page's picture: the tutorial's crystal on its Pilatus, binned 4 × 4."""

import dataclasses

import matplotlib.pyplot as plt
import torch

from nanobrag_torch import Crystal, Detector, Simulator
from nanobrag_torch.datasets import tutorial_experiment
from nanobrag_torch.plotting import show_detector_image

BIN = 4
experiment = tutorial_experiment(dtype=torch.float32)
pilatus = experiment.detector
binned = dataclasses.replace(pilatus, pixel_size_mm=pilatus.pixel_size_mm * BIN,
                             fpixels=pilatus.fpixels // BIN, spixels=pilatus.spixels // BIN)
crystal = Crystal(experiment.crystal, experiment.structure_factors, dtype=torch.float32)
with torch.no_grad():
    image = Simulator(crystal, Detector(binned, dtype=torch.float32), experiment.beam).run()

fig, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
show_detector_image(image, ax, title="A still on a Pilatus 6M (4 × 4 binned)")
