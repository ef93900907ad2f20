"""The TorchServe engine: handler, metrics, archive (.mar) builder, server lifecycle, defaults.

Only this package imports ``ts`` (TorchServe); the archive carries its handler
and metrics modules, not the builder or the launcher."""
