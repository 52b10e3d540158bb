"""The published documents' fields: what a reader of the site's JSON may rely on, and which fields may be null.

    series/<S>/<tf>/latest.json            LatestDocument: the series' snapshot less its forecasts, a banner, links
    series/<S>/<tf>/history/<origin>.json  HistoryDocument: every model's forecast at one origin (ModelForecast)
    series/<S>/<tf>/scoreboard.json        SeriesScoreboard: the series' rows
    scoreboard.json                        Scoreboard: every series' all-time rows and verdicts

The producers (``snapshots``, ``site``) return these types and the readers (the dashboard's ``page_model``,
``sentences``, ``figures``, ``charts`` and ``verify``) read nothing else: kronos_assets_tests/publishing/
test_contract.py checks both against real published files, so a field added, dropped or read without being
declared here fails it. ``X | None``: the field is present and may be null (JSON null, never 0, where the page
says n/a); ``NotRequired``: the field may be absent. Instants are ISO 8601 strings with their UTC offset.

Two parts come from plug-ins rather than from this file: a forecast's ``provenance`` holds its model kind's own
keys (checkpoints named, never a local path: ``public.public_provenance``), and the metric registry
(``metrics.registry``) names the scoreboard's metric columns and the verdicts' measures: the built-in ones are
declared here, and the test fails when a registered metric's column or measure is missing.
"""

# No `from __future__ import annotations` here: TypedDict tells NotRequired keys only from evaluated annotations.
from typing import Any, Literal, NotRequired, TypedDict

Instant = str  # ISO 8601 with offset: '2025-03-10T12:00:00+00:00'


# ----------------------------------------------------------------------------------------------- one forecast


class Sampling(TypedDict):
    """The sampling settings a forecast was drawn with (``forecasting.interface.Sampling``)."""

    n_paths: int
    horizon: int
    temperature: float
    top_p: float
    top_k: int
    seed: int


class Step(TypedDict):
    """One horizon step's summary of the sample paths, to 7 significant digits (``public.STEP_DIGITS``)."""

    step: int  # 1..horizon
    ts: Instant  # open time of the forecast bar
    q05: float
    q10: float
    q25: float
    q50: float
    q75: float
    q90: float
    q95: float
    mean_close: float
    median_close: NotRequired[float]  # q50 again: only in files published before latest.json's format 2
    mean_volume: float | None  # null: the model does not forecast volume
    median_volume: float | None


class ModelForecast(TypedDict):
    """One model's forecast at an origin (``public.public_forecast``)."""

    model: str
    n_paths: int
    horizon: int
    last_close: float
    p_up: float | None  # null for a point forecast: no probability
    p_vol_amp: float | None
    recent_vol: float
    data_start: Instant
    data_end: Instant
    exchange: str  # the exchanges whose candles it saw, comma-separated
    seed: int
    sampling: Sampling
    provenance: dict[str, Any]  # the model kind's own keys: repo, revision, checkpoint name and sha256, ...
    steps: list[Step]


class HistoryDocument(TypedDict):
    """history/<origin>.json (``snapshots.forecast_records``): immutable once published."""

    symbol: str
    timeframe: str
    origin: Instant
    forecasts: dict[str, ModelForecast]  # by model name


# ------------------------------------------------------------------------------------------------ track record

CalibrationBin = TypedDict(
    "CalibrationBin",
    {  # 'from' is a keyword: the functional form
        "from": float,
        "to": float,
        "n": int,
        "mean_p_up": float | None,  # null: no forecast in the bin
        "up_rate": float | None,
    },
)


class Skill(TypedDict):
    """CRPS skill against one baseline on the origins both scored."""

    n: int
    n_independent: int
    enough: bool
    crps_skill: float | None


class ConfidenceBand(TypedDict):
    """One band of the direction-by-confidence table (``track_record.confidence_tables``)."""

    symbol: str
    timeframe: str
    model: str
    metric: str
    band: str
    n: int
    calls: int
    hit_rate: float | None  # null: no call in the band


class TrackRecord(TypedDict):
    """What was known at the origin about the primary model's forecasts (``snapshots.track_record``); the
    calibration fields appear once a forecast is scored."""

    model: str
    scored_before: Instant
    n: int
    n_independent: int
    min_independent: int
    enough: bool
    first_origin: Instant | None
    last_origin: Instant | None
    brier_up: NotRequired[float | None]
    brier_up_coin_flip: NotRequired[float]
    mean_p_up: NotRequired[float | None]
    up_rate: NotRequired[float | None]
    brier_vol_amp: NotRequired[float | None]
    calibration: NotRequired[list[CalibrationBin]]
    pit_histogram: NotRequired[list[int]]
    skill: dict[str, Skill]  # by baseline
    direction_by_confidence: list[ConfidenceBand]


# ---------------------------------------------------------------------------------------------------- verdicts


class Comparison(TypedDict):
    """One measure's Diebold-Mariano comparison of the model with its reference (``track_record.compare_losses``)."""

    n: int
    model: float  # the model's mean loss
    reference: float  # the reference's mean loss
    reference_name: str
    relative: float | None  # model / reference - 1; null when the reference's loss is 0
    n_independent: int
    statistic: float | None  # null: the test withheld its verdict (``why`` says why)
    p_value: float | None
    df: int | None
    significant: bool
    winner: Literal["model", "reference"] | None
    verdict: str
    why: NotRequired[str]


class Verdict(TypedDict):
    """One model's verdict on one series over a window (``track_record.verdicts``). A measure is null where it
    does not apply (a point forecast's P(up)) or the model is its own reference."""

    symbol: str
    timeframe: str
    model: str
    horizon: int
    window_days: int | None  # null: all time
    n: int
    n_independent: int
    min_independent: int
    first_origin: Instant
    last_origin: Instant
    crps: Comparison | None
    point_error: Comparison | None
    p_up: Comparison | None
    sentence: str


# -------------------------------------------------------------------------------------------------- scoreboard


class ScoreboardRow(TypedDict):
    """One all-time scoreboard row at the horizon's last step (``snapshots.scoreboard``). A metric that does not
    apply to the model (a point forecast's Brier score) is null."""

    symbol: str
    timeframe: str
    model: str
    window_name: str
    step: int
    horizon: int
    n_forecasts: int
    first_origin: Instant
    last_origin: Instant
    mae: float | None
    rmse: float | None
    mape: float | None
    direction_hit_rate: float | None
    crps: float | None
    pinball: float | None
    coverage_50: float | None
    coverage_80: float | None
    coverage_90: float | None
    width_50: float | None
    width_80: float | None
    width_90: float | None
    brier_up: float | None
    brier_vol_amp: float | None
    winkler_80: float | None
    expected_coverage_50: float | None  # null for a point forecast: no band
    expected_coverage_80: float | None
    expected_coverage_90: float | None
    crps_skill_vs_rw_vol: float | None
    mae_skill_vs_rw_vol: float | None
    brier_skill_vs_rw_vol: float | None
    coverage_80_path: float | None  # the 80 % band's coverage test (``snapshots.with_coverage_tests``)
    coverage_80_p: float | None
    coverage_80_flag: Literal["too narrow", "too wide"] | None


class Scoreboard(TypedDict):
    """scoreboard.json: every published series."""

    generated_at: str  # the newest origin shown, to the second
    synthetic: bool
    rows: list[ScoreboardRow]
    verdicts: list[Verdict]


class SeriesScoreboard(TypedDict):
    """series/<S>/<tf>/scoreboard.json: the series' rows as of its origin. Its track record and verdict are
    latest.json's (files published before latest.json's format 2 repeated them here)."""

    symbol: str
    timeframe: str
    as_of: Instant
    synthetic: bool
    rows: list[ScoreboardRow]
    track_record: NotRequired[TrackRecord | None]  # only in files published before latest.json's format 2
    verdict: NotRequired[Verdict | None]  # the same; verify checks it where it is there


# ----------------------------------------------------------------------------------------------------- latest


class Candle(TypedDict):
    ts: Instant  # open time
    open: float
    high: float
    low: float
    close: float
    volume: float


class PastForecast(TypedDict):
    """An earlier forecast of the primary model at its horizon's last bar, with what happened."""

    origin: Instant
    ts: Instant
    median: float
    realised: float


class SeriesState(TypedDict):
    """What a series' snapshot and its latest.json share."""

    symbol: str
    timeframe: str
    origin: Instant
    primary_model: str
    synthetic: bool
    replay: str | None  # the exchange a replay market replays; null for a live or synthetic market
    bar_seconds: int
    last_bar: Instant
    track_record: TrackRecord
    verdict: Verdict | None  # null: nothing scored yet


class SeriesSnapshot(SeriesState):
    """Everything the dashboard shows for a series at one origin (``snapshots.series_snapshot``)."""

    forecasts: dict[str, ModelForecast]  # by model name: the history file of the origin
    candles: list[Candle]  # the bars before the origin
    past: list[PastForecast]
    actual: NotRequired[list[Candle]]  # an ad-hoc forecast's held-out bars (forecasting.adhoc); never published


class Links(TypedDict):
    """Where the rest of the series is, relative to the site root."""

    history: str  # the newest forecast (every model's): the history file of the origin
    paths: str
    chart: str
    chart_png: str
    scoreboard: str
    dashboard: str


class CandleTable(TypedDict):
    """The candles as a table: each row the values of ``columns`` (ts, open, high, low, close, volume)."""

    columns: list[Literal["ts", "open", "high", "low", "close", "volume"]]
    rows: list[list[Instant | float]]


class PastTable(TypedDict):
    """The past forecasts as a table: each row the values of ``columns`` (origin, ts, median, realised)."""

    columns: list[Literal["origin", "ts", "median", "realised"]]
    rows: list[list[Instant | float]]


Table = CandleTable | PastTable


class LatestDocument(SeriesState):
    """latest.json, format 2 (``publishing.latest``): the snapshot without its forecasts (``links.history``), the
    candles and past forecasts as tables, a banner and links."""

    format: Literal[2]
    candles: CandleTable  # the bars before the origin
    past: PastTable
    demo_banner: str | None  # synthetic or replayed prices; null for a live market
    links: Links
