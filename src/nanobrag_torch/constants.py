"""Physical constants of nanoBragg's model, in SI units."""

R_E_SQR_M2 = 7.94079248018965e-30
"""Square of the classical electron radius (Thomson cross-section / (8π/3)), m²."""

AVOGADRO_PER_MOL = 6.02214179e23
"""Avogadro's number, as nanoBragg writes it."""

WATER_F = 2.57
"""Forward structure factor of a water molecule (electrons)."""

WATER_MOLAR_MASS_G = 18.0
"""Molar mass of water, g/mol."""
