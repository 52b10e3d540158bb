"""The metric registry: every per-forecast score declared once.

Each ``Metric`` says how one value per horizon step is computed from a forecast's sample paths and the realised
closes (``compute``), which models it applies to (``applies``: n/a otherwise), how the scoreboard aggregates it
(``aggregate`` into the column ``board``), whether lower or higher is better, its storage type in the evaluations
table, the schema version that added its column (``since``) and how the dashboard shows it (``column``). Everything
else reads this list: ``scores.score_paths`` (the rows), the warehouse's evaluations columns and the migration that
adds a new metric's column to an existing warehouse and fills it (``warehouse.migrations``), the scoreboard SQL
(``board_sql``), the dashboard's table (``publishing.sentences``), the verdicts and the losses they compare
(``verdict``: ``judged``, ``loss_pairs_sql``), ``kronos-assets verify`` (``board_metrics``) and the ad-hoc job
(``forecasting.adhoc``). Adding a metric is one entry here (with ``since`` the next schema version) and its test.

All probabilistic scores are on log returns relative to the last observed close (``Inputs.x``/``Inputs.y``);
point errors are on the close itself. Plain dataclasses and numpy: no Dagster, no warehouse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Literal

import numpy as np

from kronos_assets.metrics.rules import crps_samples, pinball_loss, pit_values, realised_path_volatility

INTERVALS: dict[int, tuple[float, float]] = {50: (0.25, 0.75), 80: (0.1, 0.9), 90: (0.05, 0.95)}
WINKLER_ALPHA = 0.2  # the central 80 % band
CONFIDENT_UP, CONFIDENT_DOWN = 0.6, 0.4  # P(up) above / below: a confident direction call
BASELINE = "random_walk_vol"  # the reference a probabilistic forecast has to beat
COIN_FLIP_BRIER = 0.25  # the Brier score of P(up) = 0.5

Applies = Literal["all", "probabilistic", "directional"]
# mean: avg over forecasts; root_mean: sqrt(avg) (RMSE); by_confidence: a table by P(up) band
# (``confidence_table``); None: kept per forecast, aggregated by its own SQL (reliability, PIT) or not at all.
Aggregate = Literal["mean", "root_mean", "by_confidence"] | None


@dataclass
class Inputs:
    """One forecast against its realised closes, with the intermediate values several metrics share."""

    paths: np.ndarray  # (n_paths, H) closes
    realised: np.ndarray  # (H,)
    last: float
    levels: np.ndarray  # quantile levels of the pinball loss
    p_vol_amp: float | None = None
    recent_vol: float | None = None

    @cached_property
    def median(self) -> np.ndarray:
        return np.median(self.paths, axis=0)

    @cached_property
    def x(self) -> np.ndarray:  # sample log returns
        return np.log(self.paths / self.last)

    @cached_property
    def y(self) -> np.ndarray:  # realised log returns
        return np.log(self.realised / self.last)

    @cached_property
    def p_up(self) -> np.ndarray:
        return np.mean(self.paths > self.last, axis=0)

    @cached_property
    def went_up(self) -> np.ndarray:
        return (self.realised > self.last).astype(np.float64)

    def band(self, nominal: int) -> tuple[np.ndarray, np.ndarray]:
        """The central ``nominal`` % band of the sample log returns (numpy's linear sample quantiles)."""
        if nominal not in self.__dict__.setdefault("_bands", {}):
            self.__dict__["_bands"][nominal] = tuple(np.quantile(self.x, INTERVALS[nominal], axis=0))
        return self.__dict__["_bands"][nominal]


@dataclass(frozen=True)
class Column:
    """How the dashboard's scoreboard table shows a metric."""

    header: str
    format: str  # pct, num, percent_units, coverage (see publishing.sentences.score_cells)
    tip: str
    position: int  # left to right among the metric columns


@dataclass(frozen=True)
class Verdict:
    """How the verdicts (``track_record.verdicts``) test a metric: a Diebold-Mariano test of the model's loss against
    a reference's on the same origins. The reference is one of: another model's same loss on the same origin
    (``model``), a loss computed from the model's own score row ``m`` and its forecast row ``f`` (``reference_sql``:
    the last price's error), or a constant (``constant``: a coin flip's Brier score). The loss is lower-is-better."""

    measure: str  # the verdict's key (and the DM table's measure)
    reference_name: str  # the reference in the verdict's words (published as reference_name)
    position: int  # order among the measures: the verdict's keys, its sentence, the DM table
    label: str = ""  # the measure in a sentence ("the Winkler score"); the first three have their own phrases
    loss_sql: str | None = None  # SQL over m (evaluations) and f (forecasts): the model's loss; None: m.<metric>
    model: str | None = None
    reference_sql: str | None = None
    constant: float | None = None
    loss_column: str | None = None  # its loss_pairs.sql column; None: <measure>_model
    reference_column: str | None = None  # the reference's (not for a constant); None: <measure>_reference

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.model, self.reference_sql, self.constant)) != 1:
            raise ValueError(f"verdict {self.measure!r}: give exactly one of model, reference_sql and constant")

    @property
    def loss(self) -> str:
        return self.loss_column or f"{self.measure}_model"

    @property
    def reference(self) -> str | float:
        """The reference's loss_pairs column, or the constant."""
        return self.constant if self.constant is not None else self.reference_column or f"{self.measure}_reference"


@dataclass(frozen=True)
class Metric:
    name: str  # the score's key in score_paths' rows and its evaluations column
    compute: Callable[[Inputs], Any]  # (H,) array, or one value at the last step (last_step_only)
    description: str
    applies: Applies = "all"  # probabilistic: n/a for a point forecast; directional: n/a if it never moves
    aggregate: Aggregate = "mean"
    board: str | None = None  # the scoreboard column (None: not on the scoreboard)
    better: Literal["lower", "higher"] | None = None  # None: neither (coverage, width: judged against nominal)
    sql_type: str = "DOUBLE"
    not_null: bool = True  # only columns of the first schema: a column added later cannot be NOT NULL in DuckDB
    since: int = 1  # the schema version whose evaluations table first had the column
    last_step_only: bool = False  # a whole-path score, stored at the last step (NULL elsewhere)
    skill: str | None = None  # scoreboard column of 1 - mean / mean of the random walk with volatility
    column: Column | None = None  # on the dashboard's scoreboard table
    verify: bool = True  # kronos-assets verify recomputes it (False: say why in the description)
    verdict: Verdict | None = None  # tested in the verdicts against a reference

    def ddl(self) -> str:
        return f"{self.name} {self.sql_type}" + (" NOT NULL" if self.not_null else "")


def _directional_hit(i: Inputs) -> np.ndarray:
    return (np.sign(i.median - i.last) == np.sign(i.realised - i.last)).astype(np.float64)


def _pinball(i: Inputs) -> np.ndarray:
    return pinball_loss(np.quantile(i.x, i.levels, axis=0), i.levels, i.y)


def _covered(nominal: int) -> Callable[[Inputs], np.ndarray]:
    def compute(i: Inputs) -> np.ndarray:
        lo, hi = i.band(nominal)
        return ((lo <= i.y) & (i.y <= hi)).astype(np.float64)

    return compute


def _width(nominal: int) -> Callable[[Inputs], np.ndarray]:
    def compute(i: Inputs) -> np.ndarray:
        lo, hi = i.band(nominal)
        return hi - lo

    return compute


def winkler(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Interval (Winkler) score of the central (1 - alpha) band [lo, hi]: its width plus 2/alpha times the
    distance by which ``y`` falls outside it (0 inside)."""
    return (hi - lo) + (2.0 / alpha) * (np.maximum(lo - y, 0.0) + np.maximum(y - hi, 0.0))


def _winkler_80(i: Inputs) -> np.ndarray:
    lo, hi = i.band(80)
    return winkler(lo, hi, i.y, WINKLER_ALPHA)


def _p_up_hit(i: Inputs) -> np.ndarray:
    """1.0 when P(up) > 0.5 and the close rose, or P(up) < 0.5 and it did not; NaN (no call) at exactly 0.5."""
    said = np.sign(i.p_up - 0.5)
    return np.where(said == 0, np.nan, (said > 0).astype(np.float64) == i.went_up).astype(np.float64)


def _brier_vol_amp(i: Inputs) -> float | None:
    if i.p_vol_amp is None or i.recent_vol is None:
        return None
    amplified = 1.0 if realised_path_volatility(i.realised, i.last) > i.recent_vol else 0.0
    return (float(i.p_vol_amp) - amplified) ** 2


_COVERAGE_TIP = (
    "share of outcomes inside the 80 % band, and in brackets what a perfectly calibrated forecaster's "
    "band covers with the stored number of sample paths N: 80 % x (N-1)/(N+1), 74.8 % for 30 paths; "
    "'too narrow' or 'too wide' when the hits at every step of the path (step s weighing 1/s^2, as "
    "overlapping forecasts share less of their early steps) differ from that at 5 % significance, "
    "allowing for the overlap"
)

METRICS: tuple[Metric, ...] = (
    Metric("median", lambda i: i.median, "median of the sample closes", aggregate=None),
    Metric("realised", lambda i: i.realised, "the realised close", aggregate=None),
    Metric(
        "abs_error",
        lambda i: np.abs(i.median - i.realised),
        "absolute error of the median close",
        board="mae",
        better="lower",
        skill="mae_skill_vs_rw_vol",
        # relative to the last close, against the error of the last price (what the plain random walk says)
        verdict=Verdict(
            "point_error",
            "the last price",
            2,
            loss_sql="m.abs_error / f.last_close",
            reference_sql="abs(m.realised - f.last_close) / f.last_close",
            loss_column="rel_error_model",
            reference_column="rel_error_last_price",
        ),
    ),
    Metric(
        "sq_error",
        lambda i: [e**2 for e in np.abs(i.median - i.realised)],  # scalar powers, as stored
        "squared error of the median close",
        aggregate="root_mean",
        board="rmse",
        better="lower",
    ),
    Metric(
        "ape",
        lambda i: 100.0 * np.abs(i.median - i.realised) / i.realised,
        "absolute error of the median in percent of the realised close",
        board="mape",
        better="lower",
        column=Column("MAPE", "percent_units", "mean absolute % error of the median at the horizon", 1),
    ),
    Metric(
        "direction_hit",
        _directional_hit,
        "1 when the median moved the way the close did (three-way signs, exact), else 0",
        applies="directional",
        board="direction_hit_rate",
        better="higher",
        column=Column(
            "direction",
            "pct",
            "share of forecasts whose median moved the right way (n/a: the model never forecasts a move)",
            2,
        ),
    ),
    Metric(
        "crps",
        lambda i: crps_samples(i.x, i.y),
        "fair sample CRPS on log returns",
        board="crps",
        better="lower",
        skill="crps_skill_vs_rw_vol",
        verdict=Verdict(
            "crps",
            "random walk with volatility",
            1,
            model=BASELINE,
            loss_column="crps_model",
            reference_column="crps_baseline",
        ),
        column=Column("CRPS", "num", "continuous ranked probability score on log returns (lower is better)", 3),
    ),
    Metric(
        "pinball",
        _pinball,
        "mean pinball loss over the quantile levels, on log returns",
        board="pinball",
        better="lower",
    ),
    *(
        Metric(
            f"covered_{b}",
            _covered(b),
            f"1 when the realised log return is inside the central {b} % band",
            board=f"coverage_{b}",
            column=Column("80 % band (expected)", "coverage", _COVERAGE_TIP, 4) if b == 80 else None,
        )
        for b in INTERVALS
    ),
    *(
        Metric(f"width_{b}", _width(b), f"width of the central {b} % band in log returns", board=f"width_{b}")
        for b in INTERVALS
    ),
    Metric("pit", lambda i: pit_values(i.x, i.y), "probability integral transform (ties half)", aggregate=None),
    Metric("p_up", lambda i: i.p_up, "share of paths above the last close", aggregate=None),
    Metric(
        "brier_up",
        lambda i: (i.p_up - i.went_up) ** 2,
        "Brier score of P(up)",
        applies="probabilistic",
        board="brier_up",
        better="lower",
        skill="brier_skill_vs_rw_vol",
        verdict=Verdict("p_up", "a coin flip", 3, constant=COIN_FLIP_BRIER, loss_column="brier_model"),
        column=Column(
            "Brier P(up)",
            "num",
            "Brier score of P(up): 0 is perfect, 0.25 a coin flip (n/a: a point forecast gives no probability)",
            6,
        ),
    ),
    Metric(
        "brier_vol_amp",
        _brier_vol_amp,
        "Brier score of P(volatility amplification) over the whole path",
        applies="probabilistic",
        board="brier_vol_amp",
        better="lower",
        not_null=False,
        last_step_only=True,
    ),
    Metric(
        "winkler_80",
        _winkler_80,
        "interval (Winkler) score of the central 80 % band on log returns: width + 10 x the miss distance",
        applies="probabilistic",
        board="winkler_80",
        better="lower",
        not_null=False,
        since=4,
        column=Column(
            "Winkler 80 %",
            "num",
            "interval score of the 80 % band on log returns: its width plus "
            "10 × how far the outcome fell outside it (lower is better; n/a: a point forecast has no "
            "band)",
            5,
        ),
    ),
    Metric(
        "p_up_hit",
        _p_up_hit,
        "1 when P(up) > 0.5 and the close rose or P(up) < 0.5 and it did not; NULL at exactly 0.5 (no call)",
        applies="probabilistic",
        aggregate="by_confidence",
        better="higher",
        not_null=False,
        since=4,
    ),
)


def metrics() -> tuple[Metric, ...]:
    """The registered metrics, read at call time (a test may register one more)."""
    return METRICS


def row_keys() -> tuple[str, ...]:
    return ("step", *(m.name for m in metrics()))


def on_board() -> list[Metric]:
    """The metrics with a scoreboard column (mean or root-mean aggregates)."""
    return [m for m in metrics() if m.board and m.aggregate in ("mean", "root_mean")]


def added_since(version: int) -> list[Metric]:
    return [m for m in metrics() if m.since == version]


def column_versions() -> list[int]:
    """The schema versions that added metric columns after the first tables."""
    return sorted({m.since for m in metrics() if m.since > 1})


def applicable(m: Metric, rows: list[dict[str, Any]]) -> bool:
    """Whether ``m`` applies to the model whose last-step rows (with ``last_close``) these are: a probabilistic
    metric not to a point forecast (every band of zero width), a directional one not to a model whose median never
    moves. The scoreboard SQL's rule (``board_sql``)."""
    if m.applies == "probabilistic":
        return not all(r["width_90"] == 0 for r in rows)
    if m.applies == "directional":
        return not all(r["median"] == r["last_close"] for r in rows)
    return True


# The per-forecast condition under which a metric is n/a when it holds for every forecast of a model (``applicable``)
NA_WHEN = {"probabilistic": "width_90 = 0", "directional": "median = last_close"}
_NA_SQL = {k: f"bool_and({v})" for k, v in NA_WHEN.items()}


def board_sql() -> str:
    """The scoreboard's aggregate columns (per_model in scoreboard.sql), from the registry."""
    out = []
    for m in on_board():
        agg = f"avg({m.name})" if m.aggregate == "mean" else f"sqrt(avg({m.name}))"
        if m.applies in _NA_SQL:
            agg = f"CASE WHEN {_NA_SQL[m.applies]} THEN NULL ELSE {agg} END"
        out.append(f"{agg} AS {m.board}")
    return ",\n        ".join(out)


def skill_sql() -> str:
    """The skill columns against the random walk with volatility (paired in scoreboard.sql), from the registry."""
    out = []
    for m in metrics():
        if not m.skill:
            continue
        ratio = f"1 - avg(m.{m.name}) / nullif(avg(b.{m.name}), 0)"
        if m.applies in _NA_SQL:
            ratio = f"CASE WHEN {_NA_SQL[m.applies].replace('(', '(m.', 1)} THEN NULL ELSE {ratio} END"
        out.append(f"{ratio} AS {m.skill}")
    return ",\n        ".join(out)


def aggregate(m: Metric, rows: list[dict[str, Any]]) -> float | None:
    """A board metric over per-forecast rows as the scoreboard has it (None: n/a, or no row has a value)."""
    values = [float(r[m.name]) for r in rows if r.get(m.name) is not None]
    if not values or not applicable(m, rows):
        return None
    mean = float(np.mean(values))
    return float(np.sqrt(mean)) if m.aggregate == "root_mean" else mean


def judged() -> list[Metric]:
    """The metrics the verdicts test, in their order (``Verdict.position``)."""
    return sorted((m for m in metrics() if m.verdict), key=lambda m: m.verdict.position)  # type: ignore[union-attr]


# Per model kind a verdict's measure does not apply to (``Metric.applies``): the loss_pairs column that is true on a
# forecast of that kind; the measure is n/a for a model when it holds on every forecast of the window.
NA_COLUMNS = {
    "probabilistic": ("point_forecast", "m.width_90 = 0"),  # every path the same: no probability
    "directional": ("no_move", "m.median = f.last_close"),
}


_OWN = re.compile(r"\bm\.")  # the model's own score row in a loss expression


def loss_pairs_sql(skeleton: str) -> str:
    """loss_pairs.sql with the judged metrics' losses, their references' and the n/a flags in its slots."""
    columns, joins, aliases = [], [], {}
    for m in judged():
        v = m.verdict
        assert v is not None
        loss = v.loss_sql or f"m.{m.name}"
        columns.append(f"{loss} AS {v.loss}")
        if v.model is not None:
            if v.model not in aliases:
                alias = aliases[v.model] = f"ref{len(aliases)}"
                name = v.model.replace("'", "''")
                joins.append(
                    f"LEFT JOIN scored {alias} ON {alias}.symbol = m.symbol AND {alias}.origin = m.origin "
                    f"AND {alias}.model = '{name}'"
                )
            columns.append(f"{_OWN.sub(aliases[v.model] + '.', loss)} AS {v.reference}")  # its same loss
        elif v.reference_sql is not None:
            columns.append(f"{v.reference_sql} AS {v.reference}")
    columns += [f"{sql} AS {name}" for name, sql in NA_COLUMNS.values()]
    return skeleton.replace("/* registry: losses */", ",\n    ".join(columns)).replace(
        "/* registry: reference joins */", "\n".join(joins)
    )


CONFIDENCE_BANDS = (f"p_up > {CONFIDENT_UP}", f"p_up < {CONFIDENT_DOWN}", f"{CONFIDENT_DOWN} to {CONFIDENT_UP}")


def confidence_band(p_up: float) -> str:
    return (
        CONFIDENCE_BANDS[0]
        if p_up > CONFIDENT_UP
        else CONFIDENCE_BANDS[1]
        if p_up < CONFIDENT_DOWN
        else CONFIDENCE_BANDS[2]
    )


def confidence_table(rows: list[dict[str, Any]], metric: str = "p_up_hit") -> list[dict[str, Any]]:
    """Direction accuracy by confidence: per band of P(up) (above 0.6, below 0.4, the rest) the forecasts in it
    (``n``), those that made a call (``calls``: P(up) not exactly 0.5), and the share of calls that were right
    (``hit_rate``, None without a call). ``rows``: one model's last-step rows with ``p_up`` and ``metric``."""
    out = []
    for band in CONFIDENCE_BANDS:
        mine = [r for r in rows if confidence_band(r["p_up"]) == band]
        calls = [float(r[metric]) for r in mine if r.get(metric) is not None and np.isfinite(r[metric])]
        out.append(
            {"band": band, "n": len(mine), "calls": len(calls), "hit_rate": float(np.mean(calls)) if calls else None}
        )
    return out
