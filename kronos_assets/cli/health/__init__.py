"""``kronos-assets health``: one screen saying what is configured, what is reachable, what is fresh and what fails.

    configured  profile, market source, symbols, timeframes, forecasters and models, where it publishes,
                the project home and the Dagster instance
    reachable   the warehouse file (opened read-only, its block accounting and rows per table checked), the
                publish folder or bucket, the uploads folder, the Dagster instance; the exchanges and the bucket
                only with ``--network`` (no network call otherwise)
    fresh       per series, the newest clean candle and the newest forecast against the timeframe; the newest
                publication (manifest.json)
    failing     failed runs of the last hours that no later run of the same job and partitions has repaired,
                asset checks whose latest evaluation failed (or that their run ended before evaluating), and
                alerts the webhook has not received

A row is OK, WARN, FAIL, SKIP (not checked, with the reason) or INFO. The exit status is 1 when any row is FAIL.
A damaged file (the warehouse, a Dagster SQLite file) is named with what to do as the screen's last line.
Freshness is ``market.rules.freshness``, the rule the assets' freshness policies use: data older than two bars
(plus the schedule's few minutes) warns, older than three fails.

One module per job: ``rows`` (the row and its formatting), ``configured``, ``reachable``, ``fresh``, ``failing``
(the Dagster instance's runs, checks, slots and daemon), ``alerting`` (alerts not delivered), ``report`` (all
rows, rendered) and ``stored`` (the damaged-file probes ``kronos-assets check`` shares).
"""

from kronos_assets.cli.health.configured import configured, model_source
from kronos_assets.cli.health.report import SECTIONS, Report, main, run_health
from kronos_assets.cli.health.rows import FAIL, INFO, OK, SKIP, WARN, Row

__all__ = [
    "FAIL",
    "INFO",
    "OK",
    "SKIP",
    "SECTIONS",
    "WARN",
    "Report",
    "Row",
    "configured",
    "main",
    "model_source",
    "run_health",
]
