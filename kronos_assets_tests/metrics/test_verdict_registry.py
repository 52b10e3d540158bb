"""Verdicts derived from the metric registry: the published verdicts of a fixed record stay byte-identical to
those of the hand-kept list they replaced (golden/verdicts.json, written by that code), ``kronos-assets verify``
judges from the same derived list, and a metric registered with a verdict declaration reaches both."""

from __future__ import annotations

import json

import pytest

from kronos_assets.publishing import verify as v
from kronos_assets.track_record import verdicts
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.metrics.verdict_record import CASES, GOLDEN, T0, HOUR, build, dumps, warehouse_verdicts


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("verdicts") / "warehouse.duckdb")
    return wh, build(wh)


def verify_verdicts(scored) -> dict:
    """The verdicts ``kronos-assets verify`` recomputes from its re-scored rows, in the warehouse's cases."""
    out = {}
    for name, days in CASES.items():
        out[name] = verdicts(v._Losses(v.loss_pairs(scored)), "1h", days)
        out[f"{name} as of"] = verdicts(v._Losses(v.loss_pairs(scored)), "1h", days, scored_before=T0 + 120 * HOUR)
    return out


def test_published_verdicts_of_a_fixed_record_are_unchanged(record) -> None:
    wh, _ = record
    assert dumps(warehouse_verdicts(wh)) == GOLDEN.read_text()


def test_verify_judges_the_re_scored_record_as_the_warehouse_does(record) -> None:
    _, scored = record
    golden = json.loads(GOLDEN.read_text())
    ours = json.loads(dumps(verify_verdicts(scored)))
    assert ours == {k: golden[k] for k in ours}
