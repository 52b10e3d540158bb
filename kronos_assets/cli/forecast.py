"""kronos-forecast: sample Kronos paths for a candle file, or pre-download checkpoints into the hub cache.

The command is an application on top of the kronos library, the candle file reader (market/files.py) and the
forecasting layer's path summaries (forecasting/summary.py), so it is a command above them (cli/): kronos/ imports
nothing above it.

Only argparse and the small config module load before the arguments are parsed: ``--help`` and argument errors
print at once, and numpy, polars and torch are imported when there is work to do.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from kronos_assets.cli.script_exit import exit_without_teardown
from kronos_assets.kronos.config import (
    CONTEXT_POLICIES,
    DEFAULT_CONTEXT_POLICY,
    DEFAULT_MODEL_REPO,
    MODES,
    NAMED_CHECKPOINTS,
    OFFICIAL,
)
from kronos_assets.kronos.errors import KronosError, KronosInputError, TimestampOrderError

if TYPE_CHECKING:
    import polars as pl

DEFAULT_MAX_CONTEXT = 512
_INTERVAL = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

POLICY_HELP = (
    "what to do when history + horizon exceed --max-context. 'exact' (default) is the model's own sliding "
    "window. 'trim' is a speed option: it keeps only the last max_context - horizon history bars so the window "
    "never slides; the same result as 'exact' whenever history + horizon <= max_context, otherwise a different "
    "forecast from the first step."
)
HISTORY_HELP = (
    "use only the last N bars of the file: the model sees, and is normalised on, these bars alone (default: "
    "--max-context minus --horizon, e.g. 488 with the defaults, 480 for --model demo: the most bars that stay in "
    "view for the whole forecast)"
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _check_separator(path: Path) -> None:
    """A clear error for a ';'- or tab-separated file (it would otherwise read as one column of that name)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", errors="replace") as fh:  # type: ignore[operator]
            header = fh.readline().strip()
    except OSError:
        return  # the reader reports unreadable files itself
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if sep in header and "," not in header:
            raise KronosInputError(
                f"{path}: row 1 (the header {header[:80]!r}) is separated by {name}; kronos-forecast reads "
                "comma-separated files: save the file with commas between the columns"
            )


def read_candles_csv(path: str | Path) -> "pl.DataFrame":
    """Read and validate a candle file (CSV, optionally .gz; Parquet or Feather too) with the project's candle
    reader (market.files): a time column plus open/high/low/close, volume and amount optional. Every problem
    (no rows, an unparsable value, low above high, a price <= 0, unsorted or duplicate times, ...) raises
    KronosInputError naming the file, the row and the problem. Returns a candle frame with ``ts`` in UTC."""
    from kronos_assets.market.files import CandleFileError, read_candle_file

    path = Path(path)
    if path.name.lower().endswith((".csv", ".csv.gz", ".txt")):
        _check_separator(path)
    try:
        return read_candle_file(path)
    except CandleFileError as exc:
        raise KronosInputError(f"{path}: {exc.detail}") from exc


def parse_interval(text: str) -> timedelta:
    m = _INTERVAL.match(text.strip().lower())
    if not m or int(m.group(1)) == 0:
        raise KronosInputError(f"interval {text!r} is not like 15m, 1h, 4h or 1d")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def infer_interval(ts: "pl.Series") -> timedelta:
    import numpy as np

    if ts.len() < 2:
        raise KronosInputError(
            f"need at least 2 bars to infer the bar interval (the file has {ts.len()}); "
            "pass --interval, e.g. --interval 1h"
        )
    diffs = ts.tail(101).diff().drop_nulls().dt.total_microseconds().to_numpy()
    step = float(np.median(diffs))
    if step <= 0:
        raise TimestampOrderError("timestamps are not increasing; cannot infer the bar interval")
    return timedelta(microseconds=step)


def _forecast(args: argparse.Namespace) -> int:
    named = NAMED_CHECKPOINTS.get(args.model) if not Path(args.model).is_dir() else None
    max_context = args.max_context or (named.max_context if named else DEFAULT_MAX_CONTEXT)
    if args.horizon > max_context:
        raise KronosInputError(f"--horizon {args.horizon} is longer than --max-context {max_context}")
    history = args.history or max(max_context - args.horizon, 1)
    candles = read_candles_csv(args.csv)  # before torch loads: a bad file is reported at once
    rows_in_file = candles.height
    candles = candles.tail(history)
    step = parse_interval(args.interval) if args.interval else infer_interval(candles["ts"])
    last = candles["ts"][-1]
    future = [last + step * (i + 1) for i in range(args.horizon)]

    from kronos_assets.forecasting.summary import summarise
    from kronos_assets.kronos.inputs import CLOSE, VOLUME
    from kronos_assets.kronos.predictor import KronosPredictor  # torch: only once the input is known to be good

    predictor = KronosPredictor.from_pretrained(
        args.model,
        args.tokenizer,
        model_revision=args.model_revision,
        tokenizer_revision=args.tokenizer_revision,
        cache_dir=args.cache_dir,
        local_files_only=args.offline,
        device=args.device,
        max_context=max_context,
        context_policy=args.context_policy,
    )
    fc = predictor.forecast(
        candles,
        future,
        n_paths=args.paths,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seeds=args.seed,
        mode=args.mode,
    )
    doc = {
        "provenance": predictor.provenance(),
        "sampling": {
            "n_paths": args.paths,
            "horizon": args.horizon,
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "seed": args.seed,
            "mode": args.mode,
        },
        "input": {
            "csv": str(args.csv),
            "rows_in_file": rows_in_file,
            "rows": candles.height,
            "first_ts": candles["ts"][0].isoformat(),
            "last_ts": last.isoformat(),
            "interval_seconds": step.total_seconds(),
        },
        **fc.to_dict(include_paths=not args.no_paths),
    }
    s = summarise(fc.paths[..., CLOSE], fc.paths[..., VOLUME], fc.history_close)
    doc["summary"] = {
        "quantile_levels": list(s.levels),
        "close_quantiles": {str(lv): s.quantiles[j].tolist() for j, lv in enumerate(s.levels)},
        "mean_close": s.mean_close.tolist(),
        "median_close": s.median_close.tolist(),
        "mean_volume": s.mean_volume.tolist(),
        "median_volume": s.median_volume.tolist(),
        "p_up": s.p_up,
        "p_vol_amp": s.p_vol_amp,
        "recent_vol": s.recent_vol,
    }
    text = json.dumps(doc, indent=None if args.compact else 1)
    if args.output == "-":
        print(text)
    else:
        _write_atomically(Path(args.output), text)
        print(
            f"wrote {args.output}: {args.paths} paths x {args.horizon} bars from the last {candles.height} of "
            f"{rows_in_file} bars, P(up)={s.p_up:.3f}, P(vol amp)={s.p_vol_amp:.3f}",
            file=sys.stderr,
        )
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """A reader (or a crash) never sees half a file: write a sibling temporary file, then rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _download(args: argparse.Namespace) -> int:
    from kronos_assets.kronos.hub import predownload

    if args.revision and len(args.repos) > 1:
        raise KronosInputError("--revision applies to one repo; write REPO@REVISION for several")
    infos = []
    for spec in args.repos:
        repo, _, rev = spec.partition("@")
        info = predownload(repo, rev or args.revision, cache_dir=args.cache_dir, local_files_only=args.offline)
        infos.append(info.to_dict())
    print(json.dumps(infos if len(infos) > 1 else infos[0], indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    official = "\n".join(f"  {k} @ {v.revision}" for k, v in OFFICIAL.items())
    shipped = "\n".join(f"  {k}: {v.about} (max_context {v.max_context})" for k, v in NAMED_CHECKPOINTS.items())
    p = argparse.ArgumentParser(
        prog="kronos-forecast",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sample Kronos forecast paths for a candle file (subcommand 'forecast', the default), or\n"
        "pre-download and verify checkpoints into the Hugging Face cache ('download').\n"
        "Run 'kronos-forecast forecast --help' for every forecasting option.",
        epilog="examples:\n"
        "  kronos-forecast candles.csv --model demo -o forecast.json   # the shipped checkpoint, offline\n"
        "  kronos-forecast candles.csv --horizon 24 --paths 30 --seed 1 -o forecast.json   # Kronos-mini\n"
        "  kronos-forecast candles.csv --model ./ckpt/model --tokenizer ./ckpt/tokenizer --device cpu\n"
        "  kronos-forecast download NeoQuasar/Kronos-mini NeoQuasar/Kronos-Tokenizer-2k\n"
        "  HF_HUB_OFFLINE=1 kronos-forecast candles.csv   # from the cache only\n\n"
        f"shipped checkpoints (--model NAME):\n{shipped}\n\nofficial checkpoints (default revisions):\n{official}",
    )
    sub = p.add_subparsers(dest="command")
    f = sub.add_parser(
        "forecast",
        help="forecast a candle file and write paths + summary as JSON",
        description="Forecast a file of candles (a time column, open/high/low/close; volume and amount optional) "
        "and write all sample paths (open, high, low, close, volume, amount per step) with their summary: close "
        "quantiles, mean/median paths, P(up) and P(volatility amplification). One --seed fixes the result. "
        "Only the last --history bars are used; the model is normalised on them alone.",
    )
    f.add_argument(
        "csv",
        help="candle file (.csv, .csv.gz, .parquet, .feather); times as ISO strings (naive = UTC) "
        "or epoch numbers, in a column named timestamp, ts, time, date or open_time",
    )
    f.add_argument(
        "--model",
        default=DEFAULT_MODEL_REPO,
        help=f"a shipped checkpoint ({', '.join(NAMED_CHECKPOINTS)})"
        ", a hub repo id or a local folder (default %(default)s)",
    )
    f.add_argument("--model-revision", help="hub revision (default: the pinned one for official repos, else main)")
    f.add_argument("--tokenizer", help="hub repo id or local folder (default: the model's own tokenizer)")
    f.add_argument("--tokenizer-revision", help="hub revision of the tokenizer (default: pinned / main)")
    f.add_argument("--cache-dir", help="Hugging Face hub cache folder (default: the hub's own)")
    f.add_argument("--offline", action="store_true", help="use only the hub cache (like HF_HUB_OFFLINE=1)")
    f.add_argument("--horizon", type=_positive_int, default=24, help="bars to forecast (default %(default)s)")
    f.add_argument("--paths", type=_positive_int, default=30, help="number of sample paths (default %(default)s)")
    f.add_argument("--history", type=_positive_int, help=HISTORY_HELP)
    f.add_argument("--temperature", type=float, default=1.0, help="sampling temperature > 0 (default %(default)s)")
    f.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="keep the k most likely tokens; 0 = off; when > 0, --top-p is ignored (default %(default)s)",
    )
    f.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass in (0, 1] (default %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same paths")
    f.add_argument("--context-policy", choices=CONTEXT_POLICIES, default=DEFAULT_CONTEXT_POLICY, help=POLICY_HELP)
    f.add_argument(
        "--max-context",
        type=_positive_int,
        help=f"tokens the model sees at once (default "
        f"{DEFAULT_MAX_CONTEXT}, or the shipped checkpoint's own; the authors use 512, or 2048 for "
        "Kronos-mini)",
    )
    f.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: cuda > mps > cpu)")
    f.add_argument(
        "--mode",
        choices=MODES,
        default="fast",
        help="fast (KV cache, default) or reference "
        "(recompute the window every step like the original; slow, for checking)",
    )
    f.add_argument("--interval", help="bar interval for the future timestamps, e.g. 15m, 1h, 1d (default: inferred)")
    f.add_argument("--output", "-o", default="-", help="JSON output file (default: stdout)")
    f.add_argument("--no-paths", action="store_true", help="leave the sample paths out of the JSON")
    f.add_argument("--compact", action="store_true", help="write JSON on one line")
    f.set_defaults(run=_forecast)
    d = sub.add_parser(
        "download",
        help="pre-download checkpoints into the hub cache and verify them",
        description="Snapshot config.json + model.safetensors of each repo into the Hugging Face cache, verify "
        "them (published sha256 for pinned official revisions; tensor shapes vs config.json always) and print "
        "repo, revision, sha256s, parameter count and size as JSON.",
    )
    d.add_argument("repos", nargs="+", metavar="REPO[@REVISION]", help="hub repo ids, e.g. NeoQuasar/Kronos-mini")
    d.add_argument("--revision", help="revision for a single repo (default: pinned for official repos, else main)")
    d.add_argument("--cache-dir", help="Hugging Face hub cache folder (default: the hub's own)")
    d.add_argument("--offline", action="store_true", help="only check the cache, never the network")
    d.set_defaults(run=_download)
    return p


def _input_error(exc: BaseException) -> bool:
    """Bad input or environment (reported in one line), as opposed to a bug (shown with its traceback)."""
    polars = sys.modules.get("polars")
    polars_error = polars.exceptions.PolarsError if polars else ()
    return isinstance(exc, (KronosError, ValueError, OSError, *((polars_error,) if polars_error else ())))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in ("forecast", "download", "-h", "--help"):
        args_list.insert(0, "forecast")  # `kronos-forecast candles.csv ...` means forecast
    parser = build_parser()
    args = parser.parse_args(args_list)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except Exception as exc:
        if not _input_error(exc):
            raise
        print(f"kronos-forecast: error: {exc}", file=sys.stderr)
        return 2


def cli() -> None:
    """The ``kronos-forecast`` console script (cli.script_exit)."""
    exit_without_teardown(main())


if __name__ == "__main__":
    cli()
