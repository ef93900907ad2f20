"""Training: synthetic voices, CREMA-D-style datasets, preset checkpoints, train, evaluate."""
