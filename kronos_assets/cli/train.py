"""kronos-train: train (or fine-tune) a Kronos checkpoint as configured in configs/training.yaml.

    kronos-train demo                     # regenerate the demo checkpoint (kronos_assets/checkpoints/demo)
    kronos-train --list                   # the configured runs
    kronos-train mini-1h --resume         # continue an interrupted run from its saved state
    kronos-train demo --out /tmp/demo --predictor-steps 50 --no-eval

The output folder holds model/ and tokenizer/ (config.json + model.safetensors), training.json and MODEL_CARD.md.
The resume state lives in <KRONOS_HOME>/training/<run>/state (or --state-dir) and is written every save_every steps.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from kronos_assets.base import environment
from kronos_assets.base.config_files import ConfigError
from kronos_assets.cli.script_exit import exit_without_teardown
from kronos_assets.training.config import SOURCES, load_training_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kronos-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", nargs="?", help="name of a run in the training config")
    p.add_argument(
        "--config", help="training config (default: configs/training.yaml, or $KRONOS_CONFIG_DIR/training.yaml)"
    )
    p.add_argument("--list", action="store_true", help="list the configured runs and exit")
    p.add_argument("--home", help="project home for the warehouse, resume state and default outputs ($KRONOS_HOME)")
    p.add_argument("--out", help="output folder (default: the run's `output`, else <KRONOS_HOME>/checkpoints/<run>)")
    p.add_argument("--source", choices=SOURCES, help="where candles come from (default: the run's data.source)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: the run's device)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the run's threads, else torch's)")
    p.add_argument("--tokenizer-steps", type=int, help="override the tokenizer stage's steps")
    p.add_argument("--predictor-steps", type=int, help="override the predictor stage's steps")
    p.add_argument("--resume", action="store_true", help="continue from the saved state of this run if there is one")
    p.add_argument("--state-dir", help="folder of the resume state (default: <KRONOS_HOME>/training/<run>/state)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (state saved; resume later)")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.add_argument("--quiet", action="store_true", help="only warnings and the final summary")
    return p


def _models() -> dict | None:
    """models.yaml entries of the active profile, so a run can start from a configured model key."""
    from kronos_assets.configuration.settings import load_settings

    try:
        return load_settings().models
    except ConfigError as exc:
        logging.getLogger("kronos_assets.training").warning(
            "models.yaml not loaded (%s); model-key bases unavailable", exc
        )
        return None


def _warehouse() -> Any:
    """The active profile's warehouse (data source "warehouse"): the library takes it, the CLI opens it."""
    from kronos_assets.configuration.settings import load_settings

    return load_settings(home=environment.home()).open_warehouse()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if args.home:
        environment.export(HOME=args.home)
    config = Path(args.config) if args.config else environment.config_dir() / "training.yaml"
    try:
        runs = load_training_config(config, _models())
    except ConfigError as exc:
        for line in exc.lines:  # every problem of the file, each naming the file and the field
            print(f"configuration error: {line}", file=sys.stderr)
        return 2
    if args.list or not args.run:
        for name, r in runs.items():
            d = r.data
            print(
                f"{name}: base {r.base.label()}, {', '.join(d.symbols)} {d.timeframe}, train "
                f"[{d.train_start.date()}, {d.train_end.date()}), held out [{d.heldout_start.date()}, "
                f"{d.heldout_end.date()}), {r.tokenizer.steps}+{r.predictor.steps} steps"
            )
        return 0 if args.list else 2
    if args.run not in runs:
        print(f"no run {args.run!r} in {config}; configured: {', '.join(runs)}", file=sys.stderr)
        return 2

    from kronos_assets.kronos.errors import KronosError
    from kronos_assets.training.data import TrainingDataError
    from kronos_assets.training.run import train_run, with_overrides
    from kronos_assets.training.trainer import ResumeError

    run = with_overrides(
        runs[args.run],
        tokenizer_steps=args.tokenizer_steps,
        predictor_steps=args.predictor_steps,
        device=args.device,
        threads=args.threads,
        output=Path(args.out).resolve() if args.out else None,
    )
    command = "kronos-train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        warehouse = _warehouse() if (args.source or run.data.source) == "warehouse" else None
    except ConfigError as exc:
        print(f"kronos-train {args.run}: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = train_run(
            run,
            source=args.source,
            warehouse=warehouse,
            state_dir=args.state_dir,
            resume=args.resume,
            evaluate=not args.no_eval,
            max_steps=args.max_steps,
            command=".venv/bin/" + command,
        )
    except (TrainingDataError, ResumeError, KronosError, ValueError, FileNotFoundError) as exc:
        print(f"kronos-train {args.run}: {exc}", file=sys.stderr)
        return 1
    if not outcome.finished:
        res = outcome.result
        last = res.history[-1] if res.history else None
        where = f"{last['stage']} step {last['step']}" if last else "the start"
        print(f"stopped after --max-steps at {where}; continue with --resume")
        return 0
    print(f"checkpoint: {outcome.output}")
    print(f"training: {outcome.seconds.get('train_total', 0):.0f} s, peak RSS {outcome.peak_rss_mb:.0f} MB")
    if outcome.heldout is not None:
        print(outcome.heldout.markdown())
    return 0


def cli() -> None:
    """The ``kronos-train`` console script (cli.script_exit)."""
    exit_without_teardown(main())


if __name__ == "__main__":
    cli()
