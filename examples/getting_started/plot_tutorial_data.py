"""
The tutorial's real data
========================

The refinement tutorial simulates a real experiment: a triclinic crystal whose
orientation comes from a MOSFLM matrix (``A.mat``) and whose structure factors were
measured (``scaled.hkl``). Both files are installed with the package. This example finds
them, reads them with the library's readers and looks at what they hold: the unit cell,
the range of Miller indices, and the amplitudes.
"""

# %%
# Imports
# -------
import matplotlib.pyplot as plt
import numpy as np

from nanobrag_torch import (
    read_hkl_file,
    read_mosflm_matrix,
    reciprocal_to_real_cell,
    tutorial_data_paths,
)

# %%
# Where the files are
# -------------------
# :func:`~nanobrag_torch.datasets.tutorial_data_paths` returns the paths of the two
# files inside the installed package, so this script (or its notebook) runs from any
# folder.
data = tutorial_data_paths()
print("matrix:", data.matrix.name, f"({data.matrix.stat().st_size} bytes)")
print("hkl:   ", data.hkl.name, f"({data.hkl.stat().st_size / 1e6:.1f} MB)")

# %%
# The orientation matrix and the cell
# -----------------------------------
# A MOSFLM matrix holds the three reciprocal vectors as its columns, multiplied by the
# wavelength of the experiment (0.9768 Å here).
# :func:`~nanobrag_torch.io.mosflm.read_mosflm_matrix` divides it out and returns
# a*, b*, c* in Å⁻¹; :func:`~nanobrag_torch.io.mosflm.reciprocal_to_real_cell` turns
# them into the real cell.
WAVELENGTH_A = 0.9768
a_star, b_star, c_star = read_mosflm_matrix(data.matrix, WAVELENGTH_A)
for name, vector in (("a*", a_star), ("b*", b_star), ("c*", c_star)):
    print(f"{name} = [{vector[0]:+.6f} {vector[1]:+.6f} {vector[2]:+.6f}] 1/Å, "
          f"|{name}| = {np.linalg.norm(vector):.6f} 1/Å")

a, b, c, alpha, beta, gamma = reciprocal_to_real_cell(a_star, b_star, c_star)
print(f"cell: a = {a:.2f} Å, b = {b:.2f} Å, c = {c:.2f} Å, "
      f"α = {alpha:.2f}°, β = {beta:.2f}°, γ = {gamma:.2f}°")

# %%
# The structure factors
# ---------------------
# :func:`~nanobrag_torch.io.hkl.read_hkl_file` reads the ``h k l F`` lines into a dense
# float64 tensor that spans the box of Miller indices in the file. A reflection the file
# does not list gets ``default_F``; with 0 here, the measured reflections are exactly
# the non-zero cells.
grid, meta = read_hkl_file(data.hkl, default_F=0.0)
measured = grid > 0
print(f"h {meta['h_min']}…{meta['h_max']}, k {meta['k_min']}…{meta['k_max']}, "
      f"l {meta['l_min']}…{meta['l_max']}: a grid of {tuple(grid.shape)}")
print(f"{int(measured.sum())} reflections measured "
      f"({100 * measured.float().mean().item():.1f} % of the box)")
print(f"F from {grid[measured].min().item():.2f} to {grid[measured].max().item():.2f}, "
      f"median {grid[measured].median().item():.2f}")

# %%
# A slice through reciprocal space
# --------------------------------
# The plane l = 0: each cell is one reflection (h, k, 0), coloured by its amplitude;
# blank cells were not measured. The measured region ends at the resolution limit of the
# experiment. The plane looks symmetric through its centre because the file lists most
# reflections together with their Friedel mate (−h, −k, −l), each measured on its own.
# The simulator applies no symmetry: a reflection that is not in the file gets
# ``default_F``.
F = grid.numpy()
l_zero = F[:, :, -meta["l_min"]]
shown = np.where(l_zero > 0, l_zero, np.nan)

fig, ax = plt.subplots(figsize=(6.4, 5.6), layout="constrained")
extent = (
    meta["k_min"] - 0.5,
    meta["k_max"] + 0.5,
    meta["h_max"] + 0.5,
    meta["h_min"] - 0.5,
)
picture = ax.imshow(shown, extent=extent, cmap="viridis", interpolation="nearest")
ax.set_xlabel("k")
ax.set_ylabel("h")
ax.set_title("|F| on the plane l = 0")
fig.colorbar(picture, ax=ax, label="|F| (electrons)")

# %%
# Amplitudes and resolution
# -------------------------
# With the reciprocal vectors, each reflection has a resolution
# ``d = 1 / |h a* + k b* + l c*|``. The amplitudes fall off towards high resolution
# (small d), as the atoms' scattering factors and their thermal motion make them: the
# image the tutorial simulates is brightest at low angles.
h, k, l = np.nonzero(F)
values = F[h, k, l]
hkl = np.stack([h + meta["h_min"], k + meta["k_min"], l + meta["l_min"]], axis=1)
reciprocal = hkl @ np.stack([a_star, b_star, c_star])
d_spacing = 1.0 / np.linalg.norm(reciprocal, axis=1)
print(f"resolution from {d_spacing.max():.1f} Å to {d_spacing.min():.2f} Å")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
left.hist(values, bins=100, color="tab:blue")
left.set_yscale("log")
left.set_xlabel("F (electrons)")
left.set_ylabel("reflections")
left.set_title("Distribution of F")

shells = np.quantile(1 / d_spacing**2, np.linspace(0, 1, 21))
shell_of = np.clip(np.digitize(1 / d_spacing**2, shells) - 1, 0, len(shells) - 2)
mean_F = [values[shell_of == s].mean() for s in range(len(shells) - 1)]
centres = 0.5 * (shells[1:] + shells[:-1])
right.plot(centres, mean_F, "o-", color="tab:orange")
right.set_xlabel("1/d² (1/Å²)")
right.set_ylabel("mean F in the shell (electrons)")
right.set_title("Amplitude fall-off with resolution")
plt.show()

# sphinx_gallery_thumbnail_number = 1
