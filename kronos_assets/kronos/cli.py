"""kronos-forecast: sample Kronos paths for a CSV of candles, or pre-download checkpoints into the hub cache."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from .config import DEFAULT_MODEL_REPO, OFFICIAL
from .errors import KronosError, KronosInputError, MissingColumnsError, TimestampOrderError
from .generate import CONTEXT_POLICIES, DEFAULT_CONTEXT_POLICY, MODES
from .hub import predownload

TIME_COLUMNS = ("ts", "timestamp", "time", "datetime", "date", "open_time")
_INTERVAL = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

POLICY_HELP = (
    "what to do when history + horizon exceed --max-context. 'trim' (default) keeps only the last "
    "max_context - horizon history bars so the window never slides and every step is one cached token: "
    "same result as 'exact' whenever history + horizon <= max_context, and far faster otherwise. 'exact' "
    "reproduces the original model's sliding window, which needs a full window forward per step once it slides."
)


def read_candles_csv(path: str | Path, time_column: str | None = None) -> pl.DataFrame:
    """Read a candle CSV (optionally .gz): a time column plus open/high/low/close, volume and amount optional.

    Times may be ISO strings (naive = UTC) or epoch numbers (s, ms or us, guessed from magnitude).
    Returns the columns lower-cased with the time column renamed to ``ts`` (UTC).
    """
    df = pl.read_csv(path, infer_schema_length=10_000)
    df = df.rename({c: c.strip().lower() for c in df.columns})
    col = time_column.lower() if time_column else next((c for c in TIME_COLUMNS if c in df.columns), None)
    if col is None or col not in df.columns:
        looked = time_column or ", ".join(TIME_COLUMNS)
        raise MissingColumnsError(f"{path}: no time column (looked for {looked}); name it with --time-column")
    s = df[col]
    if s.dtype == pl.String:
        try:
            s = s.str.to_datetime(time_unit="us")
        except pl.exceptions.PolarsError as exc:
            raise TimestampOrderError(f"{path}: cannot parse times in column {col!r}: {exc}") from exc
    elif s.dtype.is_integer() or s.dtype.is_float():
        top = float(s.abs().max() or 0)
        unit = "us" if top > 1e14 else "ms" if top > 1e11 else "s"
        s = pl.from_epoch(s.cast(pl.Int64), time_unit=unit).dt.cast_time_unit("us")
    elif s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us"))
    if isinstance(s.dtype, pl.Datetime):
        s = s.dt.convert_time_zone("UTC") if s.dtype.time_zone else s.dt.replace_time_zone("UTC")
    return df.drop(col).with_columns(s.alias("ts"))


def parse_interval(text: str) -> timedelta:
    m = _INTERVAL.match(text.strip().lower())
    if not m:
        raise KronosInputError(f"interval {text!r} is not like 15m, 1h, 4h or 1d")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def infer_interval(ts: pl.Series) -> timedelta:
    if ts.len() < 2:
        raise KronosInputError("need at least 2 bars to infer the bar interval; pass --interval")
    diffs = ts.tail(101).diff().drop_nulls().dt.total_microseconds().to_numpy()
    step = float(np.median(diffs))
    if step <= 0:
        raise TimestampOrderError("timestamps are not increasing; cannot infer the bar interval")
    return timedelta(microseconds=step)


def _forecast(args: argparse.Namespace) -> int:
    from .predictor import KronosPredictor  # torch import only when needed

    candles = read_candles_csv(args.csv, args.time_column)
    if args.history:
        candles = candles.tail(args.history)
    step = parse_interval(args.interval) if args.interval else infer_interval(candles["ts"])
    last = candles["ts"][-1]
    future = [last + step * (i + 1) for i in range(args.horizon)]
    predictor = KronosPredictor.from_pretrained(
        args.model, args.tokenizer, model_revision=args.model_revision, tokenizer_revision=args.tokenizer_revision,
        cache_dir=args.cache_dir, local_files_only=args.offline, device=args.device, max_context=args.max_context,
        context_policy=args.context_policy,
    )  # fmt: skip
    fc = predictor.forecast(candles, future, n_paths=args.paths, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, seeds=args.seed, mode=args.mode)  # fmt: skip
    doc = {
        "provenance": predictor.provenance(),
        "sampling": {"n_paths": args.paths, "horizon": args.horizon, "temperature": args.temperature,
                     "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed, "mode": args.mode},  # fmt: skip
        "input": {"csv": str(args.csv), "rows": candles.height, "first_ts": candles["ts"][0].isoformat(),
                  "last_ts": last.isoformat(), "interval_seconds": step.total_seconds()},  # fmt: skip
        **fc.to_dict(include_paths=not args.no_paths),
    }
    text = json.dumps(doc, indent=None if args.compact else 1)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        s = fc.summary
        print(f"wrote {args.output}: {args.paths} paths x {args.horizon} bars, P(up)={s.p_up:.3f}, "
              f"P(vol amp)={s.p_vol_amp:.3f}", file=sys.stderr)  # fmt: skip
    return 0


def _download(args: argparse.Namespace) -> int:
    infos = []
    for spec in args.repos:
        repo, _, rev = spec.partition("@")
        if args.revision and len(args.repos) > 1:
            raise KronosInputError("--revision applies to one repo; write REPO@REVISION for several")
        info = predownload(repo, rev or args.revision, cache_dir=args.cache_dir, local_files_only=args.offline)
        infos.append(info.to_dict())
    print(json.dumps(infos if len(infos) > 1 else infos[0], indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    official = "\n".join(f"  {k} @ {v.revision}" for k, v in OFFICIAL.items())
    p = argparse.ArgumentParser(
        prog="kronos-forecast",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sample Kronos forecast paths for a CSV of candles (subcommand 'forecast', the default), or\n"
        "pre-download and verify checkpoints into the Hugging Face cache ('download').\n"
        "Run 'kronos-forecast forecast --help' for every forecasting option.",
        epilog="examples:\n"
        "  kronos-forecast candles.csv --horizon 24 --paths 30 --seed 1 -o forecast.json\n"
        "  kronos-forecast candles.csv --model ./ckpt/model --tokenizer ./ckpt/tokenizer --device cpu\n"
        "  kronos-forecast download NeoQuasar/Kronos-mini NeoQuasar/Kronos-Tokenizer-2k\n"
        "  HF_HUB_OFFLINE=1 kronos-forecast candles.csv   # from the cache only\n\n"
        f"official checkpoints (default revisions):\n{official}",
    )
    sub = p.add_subparsers(dest="command")
    f = sub.add_parser(
        "forecast",
        help="forecast a candle CSV and write paths + summary as JSON",
        description="Forecast a CSV of candles (a time column, open/high/low/close; volume and amount optional) "
        "and write all sample paths (open, high, low, close, volume, amount per step) with their summary: close "
        "quantiles, mean/median paths, P(up) and P(volatility amplification). One --seed fixes the result.",
    )
    f.add_argument("csv", help="candle CSV (.csv or .csv.gz); times as ISO strings (naive = UTC) or epoch numbers")
    f.add_argument("--model", default=DEFAULT_MODEL_REPO, help="hub repo id or local folder (default %(default)s)")
    f.add_argument("--model-revision", help="hub revision (default: the pinned one for official repos, else main)")
    f.add_argument("--tokenizer", help="hub repo id or local folder (default: the official model's own tokenizer)")
    f.add_argument("--tokenizer-revision", help="hub revision of the tokenizer (default: pinned / main)")
    f.add_argument("--cache-dir", help="Hugging Face hub cache folder (default: the hub's own)")
    f.add_argument("--offline", action="store_true", help="use only the hub cache (like HF_HUB_OFFLINE=1)")
    f.add_argument("--horizon", type=int, default=24, help="bars to forecast (default %(default)s)")
    f.add_argument("--paths", type=int, default=30, help="number of sample paths (default %(default)s)")
    f.add_argument("--temperature", type=float, default=1.0, help="sampling temperature > 0 (default %(default)s)")
    f.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens; 0 = off; when > 0, "
                   "--top-p is ignored (default %(default)s)")  # fmt: skip
    f.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass in (0, 1] (default %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same paths")
    f.add_argument("--context-policy", choices=CONTEXT_POLICIES, default=DEFAULT_CONTEXT_POLICY, help=POLICY_HELP)
    f.add_argument("--max-context", type=int, default=512, help="tokens the model sees at once (default "
                   "%(default)s; the authors use 512, or 2048 for Kronos-mini)")  # fmt: skip
    f.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: cuda > mps > cpu)")
    f.add_argument("--mode", choices=MODES, default="fast", help="fast (KV cache, default) or reference "
                   "(recompute the window every step like the original; slow, for checking)")  # fmt: skip
    f.add_argument("--history", type=int, help="use only the last N rows of the CSV (default: all)")
    f.add_argument("--interval", help="bar interval for the future timestamps, e.g. 15m, 1h, 1d (default: inferred)")
    f.add_argument("--time-column", help=f"name of the time column (default: first of {', '.join(TIME_COLUMNS)})")
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
    except (KronosError, ValueError, OSError, pl.exceptions.PolarsError) as exc:  # bad input, not a bug
        print(f"kronos-forecast: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
