"""kronos_assets: hourly Kronos forecasts of crypto markets with an honest, public track record.

The folders are the layers; each imports only from the layers below it (kronos_assets_tests/foundation/test_layers.py):

    cli/             the commands (kronos-assets, kronos-forecast, kronos-train)
    definitions.py   the code location's entry; defs/ the Dagster assets, checks, jobs, schedules, sensors
    orchestration/   the run operations under them: runs, failures and alerts, the local instance, retention
    configuration/   the profile's validated settings and its home folder
    training/ publishing/ evaluation/ forecasting/ kronos/ market/ warehouse/ metrics/
                     the libraries: plain values or their own config types in, no Dagster, no settings
    base/            environment variables, configuration files, durable renames, locks

checkpoints/ is package data: the shipped weights of the demo and real-1h models.
"""

from kronos_assets.base import environment

__version__ = "0.1.0"

# Before torch loads OpenMP (kronos/ and training/ import it): idle OpenMP threads spin briefly, then sleep.
# Kronos generation runs thousands of small ops; with long spinning, 2 intra-op threads on 2 cores shared with
# other processes made a Kronos-mini request 10-30x slower, and sleeping at once doubled it on a quiet machine
# (environment.bound_openmp_spinning). Only a default: a policy or count set in the environment wins. It has no
# effect in a process that imported torch before this.
environment.bound_openmp_spinning()
