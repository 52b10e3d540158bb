"""The publication contract (publishing.contract) against a real published site: every latest.json, history file
and scoreboard has exactly the declared fields with the declared types (null only where declared), and every field
the dashboard (page_model, sentences, figures, charts) and ``kronos-assets verify`` read is declared. The readers'
fields are collected by running them on documents that record each key they are asked for."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from kronos_assets.evaluation.track_record import measures
from kronos_assets.metrics.registry import metrics
from kronos_assets.publishing import verify as verify_module
from kronos_assets.publishing.charts import fan_chart_png
from kronos_assets.publishing.contract import (
    HistoryDocument,
    LatestDocument,
    Scoreboard,
    ScoreboardRow,
    SeriesScoreboard,
    SeriesSnapshot,
    Verdict,
)
from kronos_assets.publishing.figures import series_figures
from kronos_assets.publishing.pages import chart_page, dashboard_html
from kronos_assets.publishing.store import LocalStore
from kronos_assets_tests.helpers import published_snapshot
from kronos_assets_tests.publishing.test_verify import live_warehouse, publish_record


def snapshot(latest: Path) -> dict[str, Any]:
    """The snapshot a latest.json was written from (its forecasts from the history file it links to)."""
    doc = read(latest)
    return published_snapshot(latest.parents[3], doc["symbol"], doc["timeframe"])


# ------------------------------------------------------------------------------------------------- the checker


def problems(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Where ``value`` (a JSON document) departs from the type ``tp``, recursively: a missing or undeclared key, a
    null where none is declared, a wrong type. An int is a float, as in JSON; a bool is neither."""
    if tp is Any:
        return []
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        found = [problems(value, o, path) for o in options]
        if any(not f for f in found):
            return []
        if value is not None and type(None) in options and len(options) == 2:
            return next(f for o, f in zip(options, found) if o is not type(None))  # X | None: X's own complaint
        return [f"{path}: {value!r} is none of {tp}"]
    if origin is Literal:
        return [] if value in get_args(tp) else [f"{path}: {value!r} is not one of {get_args(tp)}"]
    if tp is type(None):
        return [] if value is None else [f"{path}: {value!r} where null is declared"]
    if value is None:
        return [f"{path}: null, declared {getattr(tp, '__name__', tp)} (not nullable)"]
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, declared an object ({tp.__name__})"]
        hints = get_type_hints(tp)
        out = [f"{path}.{k}: missing ({tp.__name__} requires it)" for k in sorted(tp.__required_keys__ - value.keys())]
        out += [f"{path}.{k}: not declared in {tp.__name__}" for k in sorted(value.keys() - hints.keys())]
        for k in sorted(value.keys() & hints.keys()):
            out += problems(value[k], hints[k], f"{path}.{k}")
        return out
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, declared a list"]
        return [p for i, v in enumerate(value) for p in problems(v, get_args(tp)[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, declared a mapping"]
        return [p for k, v in value.items() for p in problems(v, get_args(tp)[1], f"{path}.{k}")]
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    return [] if ok else [f"{path}: {value!r} ({type(value).__name__}), declared {tp.__name__}"]


def _nonnull(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, types.UnionType) else []
    return args[0] if len(args) == 1 else tp


def walk(tp: Any, path: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """The field at ``path`` (keys, '[]' for a list's items) under ``tp``: its path with each key of a
    ``dict[str, X]`` (a model's name, a baseline's) written '*', and why it is not declared (None: it is)."""
    parts: list[str] = []
    for i, key in enumerate(path):
        tp, where = _nonnull(tp), ".".join(path[: i + 1])
        if tp is Any:
            return (*parts, *path[i:]), None
        if is_typeddict(tp):
            hints = get_type_hints(tp)
            if key not in hints:
                return (*parts, *path[i:]), f"{where}: not declared in {tp.__name__}"
            tp = hints[key]
        elif get_origin(tp) is dict:
            tp, key = get_args(tp)[1], "*"
        elif get_origin(tp) is list and key == "[]":
            tp = get_args(tp)[0]
        else:
            return (*parts, *path[i:]), f"{where}: read inside {tp}, which has no fields"
        parts.append(key)
    return tuple(parts), None


def undeclared(tp: Any, reads: set[tuple[str, ...]]) -> list[str]:
    return sorted(filter(None, (walk(tp, p)[1] for p in reads)))


def fields(tp: Any, reads: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    return {walk(tp, p)[0] for p in reads}


# ------------------------------------------------------------------------------------------ recording documents


class Watched(dict):
    """A document that records the path of every key a reader asks for (``[k]``, ``.get``, ``in``)."""

    def __init__(self, data: dict[str, Any], reads: set[tuple[str, ...]], path: tuple[str, ...] = ()):
        super().__init__({k: watched(v, reads, (*path, k)) for k, v in data.items()})
        self._reads, self._path = reads, path

    def __getitem__(self, key: str) -> Any:
        self._reads.add((*self._path, key))
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._reads.add((*self._path, key))
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._reads.add((*self._path, str(key)))
        return super().__contains__(key)


def watched(value: Any, reads: set[tuple[str, ...]], path: tuple[str, ...] = ()) -> Any:
    if isinstance(value, dict):
        return Watched(value, reads, path)
    if isinstance(value, list):
        return [watched(v, reads, (*path, "[]")) for v in value]
    return value


# ------------------------------------------------------------------------------------------- published documents


def published(site: Path) -> dict[str, list[Path]]:
    docs = {
        "latest": sorted(site.glob("series/*/*/latest.json")),
        "history": sorted(site.glob("series/*/*/history/*.json")),
        "series scoreboard": sorted(site.glob("series/*/*/scoreboard.json")),
        "scoreboard": [site / "scoreboard.json"],
    }
    assert all(docs.values()), {k: len(v) for k, v in docs.items()}
    return docs


def read(path: Path) -> Any:
    return json.loads(path.read_bytes())


@pytest.fixture(scope="module")
def record(site_data, tmp_path_factory) -> Path:
    """A record ``verify`` can re-score (test_verify's four publications, the scores a live tick would have)."""
    root = tmp_path_factory.mktemp("contract")
    publish_record(site_data, LocalStore(root / "site"), live_warehouse(site_data, root))
    return root / "site"


@pytest.mark.parametrize("which", ["site", "record"])
def test_published_documents_have_exactly_the_declared_fields(which, site_data, record):
    site = site_data.publish_dir if which == "site" else record
    docs = published(site)
    types_of = {
        "latest": LatestDocument,
        "history": HistoryDocument,
        "series scoreboard": SeriesScoreboard,
        "scoreboard": Scoreboard,
    }
    found = {str(p.relative_to(site)): problems(read(p), types_of[kind]) for kind, paths in docs.items() for p in paths}
    assert {k: v for k, v in found.items() if v} == {}
    # The documents reach the nullable and optional corners the checker must see.
    latest, history = [read(p) for p in docs["latest"]], [read(p) for p in docs["history"]]
    assert any(f["p_up"] is None for d in history for f in d["forecasts"].values())  # a point forecast
    assert any(d["verdict"] and d["verdict"]["crps"] is None for d in latest)  # the model is its own reference
    assert all("calibration" in d["track_record"] for d in latest)
    assert all(d["format"] == 2 and d["candles"]["rows"] and d["past"]["columns"] for d in latest)
    assert all("median_close" not in s for d in history for f in d["forecasts"].values() for s in f["steps"])


def test_the_checker_names_a_field_added_dropped_or_of_another_type(site_data):
    docs = published(site_data.publish_dir)
    doc, history = read(docs["latest"][0]), read(docs["history"][-1])
    model = doc["primary_model"]
    assert problems(doc, LatestDocument) == [] and problems(history, HistoryDocument) == []
    doc["extra"] = 1
    doc["track_record"]["n"] = None
    doc["format"] = 3
    del doc["links"]["paths"]
    doc["candles"]["rows"][0][4] = None
    del history["forecasts"][model]["recent_vol"]
    history["forecasts"][model]["steps"][0]["q50"] = "1.0"
    assert sorted(problems(doc, LatestDocument)) == [
        "$.candles.rows[0][4]: None is none of str | float",
        "$.extra: not declared in LatestDocument",
        "$.format: 3 is not one of (2,)",
        "$.links.paths: missing (Links requires it)",
        "$.track_record.n: null, declared int (not nullable)",
    ]
    assert sorted(problems(history, HistoryDocument)) == [
        f"$.forecasts.{model}.recent_vol: missing (ModelForecast requires it)",
        f"$.forecasts.{model}.steps[0].q50: '1.0' (str), declared float",
    ]


def test_registered_metrics_columns_and_measures_are_declared():
    rows, verdict = get_type_hints(ScoreboardRow), get_type_hints(Verdict)
    assert [m.board for m in metrics() if m.board and m.board not in rows] == []
    assert [name for name, *_ in measures() if name not in verdict] == []


# ----------------------------------------------------------------------------------------------------- readers


def test_every_field_the_dashboard_reads_is_declared(site_data):
    """The dashboard's readers (page_model and sentences through dashboard_html, figures and charts through the
    figures file, the chart page and the PNG) on each published snapshot, and on one with no verdict yet."""
    docs = published(site_data.publish_dir)
    snaps = [snapshot(p) for p in docs["latest"]]
    snaps.append(snaps[0] | {"verdict": None})
    rows = read(docs["scoreboard"][0])["rows"]
    snap_reads: set[tuple[str, ...]] = set()
    row_reads: set[tuple[str, ...]] = set()
    for snap in snaps:
        assert problems(snap, SeriesSnapshot) == []
        mine = watched(snap, snap_reads)
        dashboard_html([mine], watched(rows, row_reads), snap["origin"], False)
        chart_page(mine)
        series_figures(mine)
        fan_chart_png(mine)
    snap_fields, row_fields = fields(SeriesSnapshot, snap_reads), {p[1:] for p in row_reads}
    for field in [
        ("forecasts", "*", "steps", "[]", "q50"),
        ("track_record", "calibration", "[]", "up_rate"),
        ("verdict", "sentence"),
        ("past", "[]", "realised"),
        ("candles", "[]", "close"),
    ]:
        assert field in snap_fields, f"the recording missed {field}: {sorted(snap_fields)}"
    assert {("model",), ("n_forecasts",), ("crps",), ("coverage_80_flag",)} <= row_fields
    assert undeclared(SeriesSnapshot, snap_reads) == [] and undeclared(ScoreboardRow, row_fields) == []


def test_every_field_verify_reads_is_declared(record, monkeypatch):
    """``verify`` over the published site, its latest.json, scoreboards and history files recording their reads
    (the manifest and the chain are the manifest's format, not this contract)."""
    reads: dict[Any, set[tuple[str, ...]]] = {
        t: set() for t in (LatestDocument, SeriesScoreboard, Scoreboard, HistoryDocument)
    }
    read_json, read_forecast = verify_module._json, verify_module.read_forecast

    def recorded_json(store: Any, key: str) -> Any:
        doc = read_json(store, key)
        tp = (
            Scoreboard
            if key == "scoreboard.json"
            else SeriesScoreboard
            if key.endswith("/scoreboard.json")
            else LatestDocument
            if key.endswith("/latest.json")
            else None
        )
        return doc if tp is None else watched(doc, reads[tp])

    monkeypatch.setattr(verify_module, "_json", recorded_json)
    monkeypatch.setattr(
        verify_module, "read_forecast", lambda key, body: watched(read_forecast(key, body), reads[HistoryDocument])
    )
    summary = verify_module.verify(LocalStore(record), workers=1)
    assert summary.scored > 0
    seen = {tp: fields(tp, r) for tp, r in reads.items()}
    assert ("forecasts", "*", "steps", "[]", "q50") in seen[HistoryDocument]
    assert ("past", "rows") in seen[LatestDocument] and ("verdict",) in seen[LatestDocument]
    assert ("rows", "[]", "n_forecasts") in seen[Scoreboard] and ("verdicts", "[]", "sentence") in seen[Scoreboard]
    assert ("rows", "[]", "n_forecasts") in seen[SeriesScoreboard]
    wrong = {tp.__name__: undeclared(tp, r) for tp, r in reads.items()}
    assert {k: v for k, v in wrong.items() if v} == {}
