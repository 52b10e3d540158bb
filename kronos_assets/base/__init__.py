"""The floor every layer stands on: the environment variables (``environment``), how configuration files are read
(``config_files``), durable renames (``durable``) and file locks (``locks``). Nothing of the package, no Dagster."""
