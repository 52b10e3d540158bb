"""The profile's configuration: ``settings`` (the validated profile, built from the libraries' own config types) and
``home_layout`` (where a profile keeps its files, and the move from older layouts). No Dagster."""
