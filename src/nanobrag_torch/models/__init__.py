"""The physical models: crystal, detector and beam."""
