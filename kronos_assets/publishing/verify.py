"""``kronos-assets verify``: checks a published record from its files alone and names the first thing wrong.

1. The chain (``publishing.chain``): every record chain/0..head present, numbered in order, each naming the sha256
   of the one before and an ``as_of`` no earlier than it; the manifest's head is the last record.
2. The files: every forecast and paths file the chain added is still stored with the sha256 it was published with
   and was never re-published with another unless that record declared it ``replaced`` (counted, and judged
   published-before-outcome as of the replacement); every object the manifest lists has its listed sha256, and every
   latest name the content of its versioned copy. The manifest's objects are the head's and every index part's
   (``publishing.manifest``: each part checked against the sha256 the head or the next part gives for it); a
   manifest of format 2 (one file) is read as it is, so a record published before and after the upgrade verifies.
3. Published before the outcome: a forecast file first added after its first horizon bar had closed must be
   labelled ``late`` (a backfill) by the record that added it.
4. The numbers: each forecast's quantiles, median and P(up) from its paths; its scores from its paths and the
   realised closes the chain recorded (``metrics.score_paths``); then the scoreboard rows, the series' past
   forecasts and the verdicts (``track_record.verdicts``: the registry's loss_pairs.sql run over the re-scored
   forecasts in an in-memory DuckDB). A row whose forecasts are not all published (or not all realised in the
   chain) is counted as not recomputable, not as a mismatch.

No Dagster, no warehouse: a reader with the files (a folder, or s3://bucket[/prefix] with the R2 variables) runs it.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

import duckdb
import numpy as np
import polars as pl

from kronos_assets.evaluation.track_record import DM_WINDOWS, VERDICT_WINDOW, measures, verdicts
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.metrics import QUANTILE_LEVELS, mean_of, skill_score
from kronos_assets.metrics.registry import BASELINE, Inputs, aggregate, confidence_table, metrics, on_board
from kronos_assets.metrics.scores import finite_or_none, validate_inputs
from kronos_assets.publishing.chain import is_forecast_key, published_late, record_key, sha256
from kronos_assets.publishing.keys import MANIFEST_KEY, history_key
from kronos_assets.publishing.latest import records
from kronos_assets.publishing.manifest import IndexDamage, listed_objects
from kronos_assets.publishing.public import STEP_REL_TOL
from kronos_assets.publishing.store import LocalStore, Stat, Store

REL_TOL = 1e-9
ABS_TOL = 1e-9
# scoreboard.json field -> the per-forecast score (metrics.score_paths key) it is the all-time mean of; every
# registered board metric is recomputed (check_rows), n/a included, unless its registry entry says verify=False
BOARD_MEANS = {m.board: m.name for m in on_board() if m.aggregate == "mean"}


class Mismatch(Exception):
    """The first thing wrong: the file, the field, what the record implies and what is published."""

    def __init__(self, file: str, field: str, expected: Any, found: Any):
        self.file, self.field, self.expected, self.found = file, field, expected, found
        super().__init__(f"{file}: {field}: expected {expected}, found {found}")

    def __reduce__(self) -> tuple:  # raised in a worker process, re-raised here
        return Mismatch, (self.file, self.field, self.expected, self.found)


@dataclass
class Summary:
    publications: int = 0
    rebuilt: int = 0  # records written after a damaged manifest was rebuilt
    forecasts: int = 0
    late: int = 0
    predating: int = 0  # forecast files listed by the manifest but published before the chain existed
    replaced: int = 0  # forecast files re-published with new content, declared by the record that did it
    scored: int = 0  # (forecast, model) pairs re-scored from paths and chain closes
    numbers: int = 0  # published numbers compared
    not_recomputable: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [
            f"intact: {self.publications} publications",
            f"{self.forecasts} forecasts ({self.forecasts - self.late} published before their outcome, "
            f"{self.late} labelled backfills)",
            f"{self.scored} forecasts re-scored, {self.numbers} published numbers recomputed",
        ]
        if self.predating:
            parts.append(f"{self.predating} forecasts predate the chain (checked against the manifest only)")
        if self.replaced:
            parts.append(
                f"{self.replaced} forecasts replaced after publication (declared; judged as of the replacement)"
            )
        if self.rebuilt:
            parts.append(f"{self.rebuilt} publications after a rebuilt manifest")
        if self.not_recomputable:
            parts.append(f"{len(self.not_recomputable)} not recomputable (e.g. {self.not_recomputable[0]})")
        return "; ".join(parts)


# ------------------------------------------------------------------------------------------------ opening a target


class _Prefixed:
    """A bucket's objects under a prefix, read-only."""

    def __init__(self, inner: Any, prefix: str):
        self.inner, self.prefix = inner, prefix.strip("/") + "/" if prefix.strip("/") else ""

    def get(self, key: str) -> bytes | None:
        return self.inner.get(self.prefix + key)

    def keys(self) -> Iterator[str]:
        return (k[len(self.prefix) :] for k in self.inner.keys() if k.startswith(self.prefix))

    def stat(self, key: str) -> Stat | None:
        return self.inner.stat(self.prefix + key)

    def location(self, key: str) -> str:
        return self.inner.location(self.prefix + key)


def open_target(target: str) -> Any:
    """A folder, or ``s3://bucket[/prefix]`` read with the R2_* variables (endpoint and keys)."""
    if target.startswith("s3://"):
        import boto3

        from kronos_assets.base import environment
        from kronos_assets.publishing.r2 import S3Store, r2_config_from_env

        bucket, _, prefix = target[len("s3://") :].partition("/")
        env = dict(environment.r2_variables()) | {environment.R2_BUCKET: bucket}
        config = r2_config_from_env(env)
        store = S3Store(
            lambda: boto3.client(
                "s3",
                endpoint_url=config.endpoint_url,
                region_name="auto",
                aws_access_key_id=env[environment.R2_KEY_ID],
                aws_secret_access_key=env[environment.R2_SECRET],
            ),
            bucket,
            None,
            config.endpoint_url,
        )
        return _Prefixed(store, prefix)
    if not Path(target).is_dir():
        raise FileNotFoundError(f"{target}: no such folder (give a publish folder or s3://bucket/prefix)")
    return LocalStore(target)


# ------------------------------------------------------------------------------------------------ checks


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (bool, str)) or isinstance(b, (bool, str)):
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _json(store: Store, key: str) -> Any:
    body = store.get(key)
    if body is None:
        raise Mismatch(key, "file", "present", "missing")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Mismatch(key, "file", "JSON", f"unreadable ({exc})") from None


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def walk_chain(store: Store, manifest: dict[str, Any], summary: Summary) -> list[dict[str, Any]]:
    """The records in order, each checked against the one before; the first break raises Mismatch."""
    head = manifest.get("chain")
    if not isinstance(head, dict):
        raise Mismatch(MANIFEST_KEY, "chain", "a chain head (published by a version with the hash chain)", "none")
    records, prev_sha, prev_as_of = [], None, None
    for seq in range(int(head["seq"]) + 1):
        key = record_key(seq)
        body = store.get(key)
        if body is None:
            raise Mismatch(key, "file", f"record {seq} of {head['seq']}", "missing")
        rec = json.loads(body)
        if rec.get("seq") != seq:
            raise Mismatch(key, "seq", seq, rec.get("seq"))
        if seq and rec.get("prev_record_sha256") != prev_sha:
            raise Mismatch(
                key,
                "prev_record_sha256",
                f"{prev_sha} (sha256 of {record_key(seq - 1)})",
                rec.get("prev_record_sha256"),
            )
        if prev_as_of is not None and _ts(rec["as_of"]) < prev_as_of:
            raise Mismatch(
                key, "as_of", f"no earlier than {record_key(seq - 1)}'s {prev_as_of.isoformat()}", rec["as_of"]
            )
        summary.rebuilt += bool(rec.get("manifest_rebuilt"))
        prev_sha, prev_as_of = sha256(body), _ts(rec["as_of"])
        records.append(rec)
    if head.get("head_sha256") != prev_sha:
        raise Mismatch(
            MANIFEST_KEY, "chain.head_sha256", f"{prev_sha} (sha256 of {head['head']})", head.get("head_sha256")
        )
    summary.publications = len(records)
    return records


def check_files(
    store: Store, manifest: dict[str, Any], records: list[dict[str, Any]], summary: Summary
) -> dict[str, int]:
    """Every forecast/paths file as the chain published it, every manifest object as listed; returns the forecast
    files' keys, each with the seq of the record that published its stored content (-1: listed by the manifest
    only). Their documents are read where they are re-scored (``rescore``), and ``check_late`` judges them."""
    first: dict[str, tuple[str, int]] = {}  # key -> (sha256, seq) as last published
    for rec in records:
        replaced = rec.get("replaced", {})
        for key, digest in rec["added"].items():
            if key in first and first[key][0] != digest:
                if replaced.get(key) != first[key][0]:
                    raise Mismatch(
                        key,
                        "sha256",
                        f"{first[key][0]} as published ({record_key(first[key][1])})",
                        f"{digest}, re-published by {record_key(rec['seq'])} without declaring it replaced",
                    )
                summary.replaced += is_forecast_key(key)
                first[key] = (digest, rec["seq"])
            first.setdefault(key, (digest, rec["seq"]))
    immutable = {k: v for k, v in first.items() if "/history/" in k or "/paths/" in k}
    try:
        listed = listed_objects(store, manifest)  # the head's entries and every index part's
    except IndexDamage as exc:
        raise Mismatch(exc.file, exc.field, exc.expected, exc.found) from None
    for key, meta in listed.items():
        if ("/history/" in key or "/paths/" in key) and key not in immutable:
            immutable[key] = (meta["sha256"], -1)  # published before the chain: the manifest's word only
    forecasts: dict[str, int] = {}
    for key in sorted(immutable):
        digest, seq = immutable[key]
        body = store.get(key)
        where = f"published by {record_key(seq)}" if seq >= 0 else "listed by manifest.json"
        if body is None:
            raise Mismatch(key, "file", where, "missing")
        if sha256(body) != digest:
            raise Mismatch(key, "sha256", f"{digest} ({where})", sha256(body))
        if key in listed and listed[key]["sha256"] != digest:
            raise Mismatch(
                MANIFEST_KEY, f"objects[{key!r}].sha256 (the head or an index part)", digest, listed[key]["sha256"]
            )
        if is_forecast_key(key):
            forecasts[key] = seq
            summary.predating += seq < 0
    for key, meta in listed.items():
        if key in immutable:
            continue
        body = store.get(key)
        if body is None:
            raise Mismatch(key, "file", "listed by manifest.json", "missing")
        if sha256(body) != meta["sha256"]:
            raise Mismatch(key, "sha256", f"{meta['sha256']} (manifest.json)", sha256(body))
    for alias, target in manifest.get("aliases", {}).items():
        body = store.get(alias)
        want = listed.get(target, {}).get("sha256")
        if body is None or sha256(body) != want:
            raise Mismatch(
                alias, "sha256", f"{want} (its versioned copy {target})", "missing" if body is None else sha256(body)
            )
    summary.forecasts = len(forecasts)
    return forecasts


def check_late(
    records: list[dict[str, Any]], forecasts: dict[str, int], heads: dict[str, dict[str, Any]], summary: Summary
) -> None:
    """Published before the outcome, or labelled a backfill by the record that added it (``heads``: each forecast
    file's symbol, timeframe and origin, as ``rescore`` read them)."""
    for rec in records:
        as_of, late = _ts(rec["as_of"]), set(rec.get("late", []))
        for key in rec["added"]:
            if forecasts.get(key) != rec["seq"]:
                continue
            if published_late(heads[key], as_of):
                if key not in late:
                    closes_at = _ts(heads[key]["origin"]) + timeframe_delta(heads[key]["timeframe"])
                    raise Mismatch(
                        key,
                        "published",
                        f"before its first horizon bar closed ({closes_at.isoformat()}) or labelled late",
                        f"{record_key(rec['seq'])} as of {rec['as_of']}, unlabelled",
                    )
                summary.late += 1


def chain_closes(records: list[dict[str, Any]]) -> dict[str, dict[datetime, float]]:
    """The realised closes per "SYMBOL tf" the records hold; a bar recorded twice with two closes is a mismatch."""
    out: dict[str, dict[datetime, float]] = defaultdict(dict)
    for rec in records:
        for series, rows in rec.get("closes", {}).items():
            for ts, close in rows:
                t = _ts(ts)
                if t in out[series] and out[series][t] != close:
                    raise Mismatch(record_key(rec["seq"]), f"closes[{series}][{ts}]", out[series][t], close)
                out[series][t] = close
    return out


# ------------------------------------------------------------------------------------------------ recomputation


def _paths_key(key: str) -> str:
    return key.replace("/history/", "/paths/")[: -len(".json")] + ".parquet"


def _paths(body: bytes | None) -> dict[str, np.ndarray]:
    """Every model's close paths (n_paths x horizon) of one paths parquet."""
    if body is None:
        return {}
    frame = pl.read_parquet(io.BytesIO(body), columns=["model", "path", "step", "close"])
    out = {}
    for (model,), part in frame.partition_by("model", as_dict=True, maintain_order=True).items():
        path, step = part["path"].to_numpy(), part["step"].to_numpy()
        horizon = int(step.max())
        n_paths = part.height // horizon
        if not (
            np.array_equal(step, np.tile(np.arange(1, horizon + 1), n_paths))
            and np.array_equal(np.diff(path[::horizon]) > 0, np.ones(n_paths - 1, bool))
        ):
            part = part.sort("path", "step")  # the site writes them in this order; anything else is sorted
            n_paths = part["path"].n_unique()
        out[model] = part["close"].to_numpy().reshape(n_paths, horizon)
    return out


def _compare(file: str, field: str, expected: Any, found: Any, summary: Summary) -> None:
    if not _close(expected, found):
        raise Mismatch(file, field, expected, found)
    summary.numbers += 1


_NAMES = [f"q{round(q * 100):02d}" for q in QUANTILE_LEVELS]


Pending = tuple[str, np.ndarray, np.ndarray, dict[str, Any], datetime]  # model, paths, realised, forecast, bar


def check_one(item: tuple[str, dict[str, Any], bytes | None, dict[datetime, float]]) -> tuple[int, list[Pending]]:
    """One forecast file against its paths (``item``: key, document, paths parquet, realised closes of its
    series): (numbers compared, [(model, close paths, realised closes, forecast entry, scored bar)] of the models
    whose closes are all recorded, to be scored)."""
    key, doc, body, realised_by_ts = item
    summary, out = Summary(), []
    paths = _paths(body)
    origin, bar = _ts(doc["origin"]), timeframe_delta(doc["timeframe"])
    levels = np.asarray(QUANTILE_LEVELS)
    for model, fc in sorted(doc["forecasts"].items()):
        close = paths.get(model)
        if close is None:
            continue
        steps = fc.get("steps") or []
        if steps:
            if len(steps) != close.shape[1]:
                raise Mismatch(key, f"forecasts.{model}.steps", f"{close.shape[1]} steps (its paths)", len(steps))
            expected = [*zip(_NAMES, np.quantile(close, levels, axis=0)), ("median_close", np.median(close, axis=0))]
            fields = [name for name, _ in expected if name in steps[0]]
            if fields:  # one comparison per model: a year of forecasts is millions of numbers
                want = np.vstack([w for name, w in expected if name in steps[0]])
                got = np.array([[st.get(name) for st in steps] for name in fields], dtype=np.float64)  # null: nan
                ok = np.abs(want - got) <= ABS_TOL + STEP_REL_TOL * np.abs(got)  # nan (a null) fails it
                if not ok.all():
                    f, i = (int(x) for x in np.argwhere(~ok)[0])
                    raise Mismatch(
                        key, f"forecasts.{model}.steps[{i}].{fields[f]}", float(want[f, i]), steps[i].get(fields[f])
                    )
                summary.numbers += got.size
        if fc.get("p_up") is not None:
            _compare(
                key, f"forecasts.{model}.p_up", float(np.mean(close[:, -1] > fc["last_close"])), fc["p_up"], summary
            )
        want = [origin + i * bar for i in range(close.shape[1])]
        if all(t in realised_by_ts for t in want):
            out.append((model, close, np.array([realised_by_ts[t] for t in want]), fc, want[-1]))
    return summary.numbers, out


def last_step_scores(pending: list[Pending]) -> list[dict[str, Any]]:
    """The last step's row of ``metrics.score_paths`` for each forecast, the same numbers computed for many at once:
    every per-step metric of the registry is column by column, so the forecasts' last-step columns side by side
    give each its own value in one call (a whole-path metric, ``last_step_only``, is computed per forecast).
    Each forecast is checked as ``score_paths`` checks it."""
    levels = np.asarray(QUANTILE_LEVELS, dtype=np.float64)
    whole = [(model, close, realised, float(fc["last_close"]), *_vol(fc)) for model, close, realised, fc, _ in pending]
    for _, close, realised, last, p_vol_amp, recent_vol in whole:
        validate_inputs(close, realised, last, levels, p_vol_amp, recent_vol)
    by_size: dict[int, list[int]] = defaultdict(list)  # paths per forecast: columns stack only at one count
    for i, (_, close, *_rest) in enumerate(whole):
        by_size[close.shape[0]].append(i)
    out: list[dict[str, Any]] = [{} for _ in whole]
    for idx in by_size.values():
        inputs = Inputs(
            np.column_stack([whole[i][1][:, -1] for i in idx]).astype(np.float64),
            np.array([whole[i][2][-1] for i in idx], dtype=np.float64),
            np.array([whole[i][3] for i in idx]),
            levels,
        )  # type: ignore[arg-type]
        columns = {
            m.name: [None if v != v else v for v in np.asarray(m.compute(inputs), dtype=np.float64).tolist()]
            for m in metrics()
            if not m.last_step_only
        }  # NaN: no value (p_up_hit without a call)
        for j, i in enumerate(idx):
            _, close, realised, last, p_vol_amp, recent_vol = whole[i]
            row: dict[str, Any] = {"step": close.shape[1]}
            for m in metrics():
                row[m.name] = (
                    columns[m.name][j]
                    if not m.last_step_only
                    else finite_or_none(
                        m.compute(
                            Inputs(
                                close.astype(np.float64),
                                realised.astype(np.float64),
                                last,
                                levels,
                                p_vol_amp,
                                recent_vol,
                            )
                        )
                    )
                )
            out[i] = row
    return out


def _vol(fc: dict[str, Any]) -> tuple[float | None, float | None]:
    vol = (fc.get("p_vol_amp"), fc.get("recent_vol"))
    return vol if None not in vol else (None, None)


Item = tuple[str, bytes | None, bytes | None]  # a forecast file's key, its body and its paths parquet's
Head = dict[str, str]  # a forecast's symbol, timeframe and origin
_CLOSES: dict[str, dict[datetime, float]] = {}  # the chain's realised closes, in a worker process


def _share_closes(closes: dict[str, dict[datetime, float]]) -> None:
    """A worker's initializer: the closes once per process rather than with every task."""
    _CLOSES.update(closes)


def read_forecast(key: str, body: bytes | None) -> dict[str, Any]:
    """A forecast file's document, named by its key (its symbol, timeframe and origin give that key back)."""
    if body is None:
        raise Mismatch(key, "file", "present", "missing")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise Mismatch(key, "file", "JSON", f"unreadable ({exc})") from None
    if history_key(doc["symbol"], doc["timeframe"], doc["origin"]) != key:
        raise Mismatch(key, "origin", f"the forecast of {key}", f"{doc['symbol']} {doc['origin']}")
    return doc


def _realised(doc: dict[str, Any], closes: dict[str, dict[datetime, float]]) -> dict[datetime, float]:
    """The recorded closes of a forecast's horizon bars."""
    series = closes.get(f"{doc['symbol']} {doc['timeframe']}", {})
    origin, bar = _ts(doc["origin"]), timeframe_delta(doc["timeframe"])
    horizon = max((fc.get("horizon") or 0 for fc in doc["forecasts"].values()), default=0)
    return {t: series[t] for t in (origin + i * bar for i in range(horizon)) if t in series}


def rescore_chunk(
    items: list[Item], closes: dict[str, dict[datetime, float]] | None = None
) -> list[tuple[Head, int, list[tuple[str, dict[str, Any]]]]]:
    """Forecast files read (``read_forecast``), checked (``check_one``) and scored together
    (``last_step_scores``) against ``closes`` (None: the worker's), in order: per file (its head, numbers
    compared, [(model, last step's row)])."""
    closes = _CLOSES if closes is None else closes
    checked = []
    for key, body, paths in items:
        doc = read_forecast(key, body)
        head = {k: doc[k] for k in ("symbol", "timeframe", "origin")}
        checked.append((head, *check_one((key, doc, paths, _realised(doc, closes)))))
    rows = iter(last_step_scores([p for *_, pending in checked for p in pending]))
    out = []
    for head, numbers, pending in checked:
        out.append(
            (
                head,
                numbers,
                [
                    (model, next(rows) | {"last_close": fc["last_close"], "horizon": close.shape[1], "scored_bar": bar})
                    for model, close, _, fc, bar in pending
                ],
            )
        )
    return out


CHUNK = 64  # forecast files per task: scored together (last_step_scores), and few enough to spread over workers


def _chunks(store: Store, keys: list[str]) -> Iterator[list[Item]]:
    for i in range(0, len(keys), CHUNK):
        yield [(key, store.get(key), store.get(_paths_key(key))) for key in keys[i : i + CHUNK]]


def _in_order(pool: Any, chunks: Iterator[list[Item]], ahead: int) -> Iterator[list]:
    """``rescore_chunk`` of each chunk in the pool, in order, with at most ``ahead`` chunks read and not yet
    scored (``pool.map`` would read every file of the record into memory first)."""
    waiting: deque = deque()
    for chunk in chunks:
        waiting.append(pool.submit(rescore_chunk, chunk))
        if len(waiting) > ahead:
            yield waiting.popleft().result()
    while waiting:
        yield waiting.popleft().result()


def rescore(
    store: Store,
    forecasts: Iterable[str],
    closes: dict[str, dict[datetime, float]],
    summary: Summary,
    workers: int = 1,
    heads: dict[str, Head] | None = None,
) -> dict[tuple[str, str, str], dict[datetime, dict[str, Any]]]:
    """Reads each forecast file, checks its summary against its paths and scores it where the chain holds its
    realised closes (``rescore_chunk``, ``CHUNK`` files a task, in ``workers`` processes): (symbol, timeframe,
    model) -> origin -> the last step's row of ``score_paths``; each file's head into ``heads`` when given. The
    first mismatch in key order is the one raised."""
    scored: dict[tuple[str, str, str], dict[datetime, dict[str, Any]]] = defaultdict(dict)
    keys = sorted(forecasts)
    chunks = _chunks(store, keys)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: polars' thread pool does not survive a fork
        pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_share_closes, initargs=(closes,)
        )
        results = (r for chunk in _in_order(pool, chunks, 2 * workers) for r in chunk)
    else:
        pool, results = None, (r for chunk in chunks for r in rescore_chunk(chunk, closes))
    try:
        for key, (head, numbers, rows) in zip(keys, results):
            if heads is not None:
                heads[key] = head
            summary.numbers += numbers
            for model, row in rows:
                scored[(head["symbol"], head["timeframe"], model)][_ts(head["origin"])] = row
                summary.scored += 1
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return scored


def check_scoreboard(store: Store, manifest: dict[str, Any], scored: dict, summary: Summary) -> None:
    """The all-time rows and the verdicts of scoreboard.json, and each series' scoreboard.json rows (and its
    verdict as of its origin, in files published before latest.json's format 2), against the re-scored
    forecasts."""
    board = _json(store, "scoreboard.json")
    check_rows("scoreboard.json", board.get("rows", []), scored, summary)
    check_verdicts("scoreboard.json", board.get("verdicts", []), scored, summary)
    for alias in sorted(manifest.get("aliases", {})):
        if alias.endswith("/scoreboard.json"):
            board = _json(store, alias)
            check_rows(alias, board.get("rows", []), scored, summary)
            if board.get("verdict"):
                check_verdicts(alias, [board["verdict"]], scored, summary, _ts(board["as_of"]), "verdict")


def check_rows(key: str, board_rows: list[dict[str, Any]], scored: dict, summary: Summary) -> None:
    for i, row in enumerate(board_rows):
        mine = scored.get((row["symbol"], row["timeframe"], row["model"]), {})
        if len(mine) != row.get("n_forecasts"):
            summary.not_recomputable.append(
                f"{key} rows[{i}] ({row['symbol']} {row['model']}): {row.get('n_forecasts')} forecasts scored, "
                f"{len(mine)} published with their realised closes"
            )
            continue
        rows = list(mine.values())
        where = f"rows[{i}] ({row['symbol']} {row['timeframe']} {row['model']})"
        for m in on_board():
            if m.verify and m.board in row:
                _compare(key, f"{where}.{m.board}", aggregate(m, rows), row[m.board], summary)
        base = scored.get((row["symbol"], row["timeframe"], BASELINE), {})
        pair = [o for o in mine if o in base]
        if row.get("crps_skill_vs_rw_vol") is not None and pair:
            value = skill_score(mean_of([mine[o] for o in pair], "crps"), mean_of([base[o] for o in pair], "crps"))
            _compare(key, f"{where}.crps_skill_vs_rw_vol", value, row["crps_skill_vs_rw_vol"], summary)


class Losses:
    """The re-scored forecasts as the tables loss_pairs.sql reads (their last step's scores and the forecasts' last
    closes) in an in-memory DuckDB, so ``track_record.verdicts`` judges them with the registry's own loss pairs."""

    def __init__(self, scored: dict):
        evals, forecasts = [], []
        for (symbol, tf, model), by_origin in sorted(scored.items()):
            keys = {"symbol": symbol, "timeframe": tf, "model": model}
            for origin, r in by_origin.items():
                evals.append(keys | r | {"origin": origin})
                forecasts.append(keys | {"origin": origin, "last_close": r["last_close"]})
        self.con = None
        if not evals:  # nothing re-scored (no forecast whose closes are published): no tables to join
            return
        frame = pl.DataFrame(evals, infer_schema_length=None)
        frame = frame.with_columns(pl.col(c).cast(pl.Float64) for c, t in frame.schema.items() if t == pl.Null)
        self.con = duckdb.connect()
        self.con.register("evaluations", frame.to_arrow())
        self.con.register("forecasts", pl.DataFrame(forecasts, infer_schema_length=None).to_arrow())

    def query(self, sql: str, params: dict[str, Any]) -> pl.DataFrame:
        return pl.DataFrame() if self.con is None else self.con.execute(sql, params).pl()


def check_verdicts(
    key: str,
    published: list[dict[str, Any]],
    scored: dict,
    summary: Summary,
    scored_before: datetime | None = None,
    field: str = "verdicts",
) -> None:
    """Published verdicts against ``track_record.verdicts`` over the re-scored losses (those scored before
    ``scored_before`` when given: a series' verdict as of its origin)."""
    if not published:
        return
    losses = Losses(scored)
    days = DM_WINDOWS[VERDICT_WINDOW]
    mine = {
        (v["symbol"], v["timeframe"], v["model"]): v
        for tf in sorted({v["timeframe"] for v in published})
        for v in verdicts(losses, tf, days, scored_before=scored_before)
    }
    for i, v in enumerate(published):
        ours = mine.get((v["symbol"], v["timeframe"], v["model"]))
        where = (f"{field}[{i}]" if field == "verdicts" else field) + f" ({v['symbol']} {v['timeframe']} {v['model']})"
        if ours is None or ours["n"] != v["n"]:
            summary.not_recomputable.append(
                f"{key} {where}: {v['n']} forecasts judged, "
                f"{0 if ours is None else ours['n']} published with their closes"
            )
            continue
        for measure, *_ in measures():
            a, b = ours.get(measure), v.get(measure)
            if (a is None) != (b is None):
                raise Mismatch(key, f"{where}.{measure}", a, b)
            for f in ("n", "model", "reference", "statistic", "p_value", "verdict") if a else ():
                _compare(key, f"{where}.{measure}.{f}", a.get(f), b.get(f), summary)
        _compare(key, f"{where}.sentence", ours["sentence"], v["sentence"], summary)


def check_past(store: Store, manifest: dict[str, Any], scored: dict, summary: Summary) -> None:
    """Each series' latest.json: the past forecasts' median and realised close at the horizon, and its verdict."""
    for alias in sorted(manifest.get("aliases", {})):
        if not alias.endswith("/latest.json"):
            continue
        doc = _json(store, alias)
        mine = scored.get((doc["symbol"], doc["timeframe"], doc.get("primary_model")), {})
        for i, p in enumerate(records(doc.get("past") or [])):
            r = mine.get(_ts(p["origin"]))
            if r is None:
                summary.not_recomputable.append(f"{alias} past[{i}] ({p['origin']}): forecast or closes not published")
                continue
            _compare(alias, f"past[{i}].median", r["median"], p["median"], summary)
            _compare(alias, f"past[{i}].realised", r["realised"], p["realised"], summary)
        if doc.get("verdict"):
            check_verdicts(alias, [doc["verdict"]], scored, summary, _ts(doc["origin"]), "verdict")
        check_confidence(alias, doc, scored, summary)


def check_confidence(key: str, doc: dict[str, Any], scored: dict, summary: Summary) -> None:
    """A latest.json's direction-by-confidence table (its track record, as of its origin) from the re-scored
    forecasts of each model scored before the origin."""
    rows = (doc.get("track_record") or {}).get("direction_by_confidence") or []
    origin = _ts(doc["origin"])
    verified = {m.name for m in metrics() if m.verify}
    for (model, metric), group in _grouped(rows).items():
        if metric not in verified:
            continue
        mine = [
            r for r in scored.get((doc["symbol"], doc["timeframe"], model), {}).values() if r["scored_bar"] < origin
        ]
        ours = confidence_table(mine, metric)
        where = f"track_record.direction_by_confidence ({model})"
        if sum(b["n"] for b in ours) != sum(b["n"] for b in group):
            summary.not_recomputable.append(
                f"{key} {where}: {sum(b['n'] for b in group)} forecasts counted, "
                f"{len(mine)} published with their closes"
            )
            continue
        for a, b in zip(ours, group):
            for f in ("band", "n", "calls", "hit_rate"):
                _compare(key, f"{where}.{b['band']}.{f}", a[f], b.get(f), summary)


def _grouped(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["model"], r["metric"]), []).append(r)
    return out


def default_workers(forecasts: int) -> int:
    """Worker processes for re-scoring: one per CPU (at most 8) once there are enough forecasts to pay for
    starting them (a few seconds each)."""
    return 1 if forecasts < 2000 else max(1, min(8, os.cpu_count() or 1))


def verify(store: Any, workers: int | None = None) -> Summary:
    """Checks the record in ``store``; returns the summary, or raises Mismatch at the first thing wrong."""
    summary = Summary()
    manifest = _json(store, MANIFEST_KEY)
    records = walk_chain(store, manifest, summary)
    forecasts = check_files(store, manifest, records, summary)
    heads: dict[str, Head] = {}
    scored = rescore(
        store,
        forecasts,
        chain_closes(records),
        summary,
        default_workers(len(forecasts)) if workers is None else workers,
        heads,
    )
    check_late(records, forecasts, heads, summary)
    check_past(store, manifest, scored, summary)
    check_scoreboard(store, manifest, scored, summary)
    return summary


def main(target: str) -> int:
    try:
        summary = verify(open_target(target))
    except Mismatch as exc:
        print(f"verify failed: {exc}")
        return 1
    except (OSError, ValueError, KeyError) as exc:
        print(f"verify failed: {target}: {type(exc).__name__}: {exc}")
        return 1
    print(f"{target}: {summary.line()}")
    return 0
