"""The model: checkpoint validation, loading, exact batched forward, calibration clips."""
