"""Audio made in code for tests: no fixture files, nothing downloaded."""

from ser_serve.samples import voice  # noqa: F401  (re-exported for the tests)
