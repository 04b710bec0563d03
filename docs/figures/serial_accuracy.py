"""The performance page's serial figure: accuracy of the merged amplitudes against the number
of stills, for the conventional processing and for refine_dataset, as measured on nanoBragg C's
stills (the numbers are in data/serial_benchmark.json, written by the serial benchmark)."""

import json
from pathlib import Path

import matplotlib.pyplot as plt

MEASURED = json.loads(Path("data", "serial_benchmark.json").read_text())  # run from docs/figures
# one row per method and number of stills, in this process (the Dask rows repeat one)
ROWS = list({(row["method"], row["shots"]): row for row in reversed(MEASURED) if row["workers"] == 0}.values())
METHODS = {
    "conventional-start": ("summation + mean merging, indexed orientations", "C0", "o--"),
    "conventional-true": ("summation + mean merging, true orientations and scales", "C0", "s-"),
    "partiality-true": ("model partialities, true orientations and scales", "C2", "^-"),
    "refine": ("refine_dataset from the indexed orientations", "C3", "D-"),
}
FIGURES = [("cc", "CC to the true amplitudes"), ("r", "R to the true amplitudes"),
           ("cc_anomalous", "CC of the Bijvoet differences")]

fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), layout="constrained")
for ax, (key, label) in zip(axes, FIGURES):
    for method, (name, colour, style) in METHODS.items():
        rows = sorted((row for row in ROWS if row["method"] == method), key=lambda row: row["shots"])
        ax.plot([row["shots"] for row in rows], [row[key] for row in rows], style, color=colour,
                label=name)
    ax.set_xlabel("stills merged")
    ax.set_title(label, fontsize=10)
    ax.set_xticks(sorted({row["shots"] for row in ROWS}))
axes[1].set_ylim(bottom=0)
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8,
           frameon=False)
