"""Naive TorchServe handlers the benchmark compares the served stack with."""
