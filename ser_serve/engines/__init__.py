"""Model-server adapters: glue around the runtime core, one package per engine."""
