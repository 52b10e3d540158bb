"""Spec §9.13 golden check of our Kronos against the official weights and regression fixtures.

Needs what this project's machines cannot download, so it is a script to run where they are available, not a
test that would always skip:

* the official Kronos-small and Kronos-Tokenizer-base at their pinned revisions in the hub cache
  (``kronos-forecast download NeoQuasar/Kronos-small NeoQuasar/Kronos-Tokenizer-base``), and
* a folder with the official ``regression_input.csv`` (2500 five-minute bars) and, optionally,
  ``regression_output_{512,256}.csv``.

    .venv/bin/python benchmarks/verify_official_golden.py /path/to/regression-data
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

from kronos_assets.cli.forecast import read_candles_csv
from kronos_assets.kronos.inputs import FEATURES
from kronos_assets.kronos.predictor import KronosPredictor

# First predicted row per context length, from the spec (§9.13): greedy (top_k 1) on CPU, rtol 1e-5.
FIRST_ROW = {
    512: ("2024-07-03 09:55", [10.897451, 10.931036, 10.800024, 10.917972, 1545.1383, 1665960.5]),
    256: ("2024-06-25 14:05", [10.766402, 10.778437, 10.755835, 10.769899, 463.83264, 479256.5]),
}


def main(data: Path) -> int:
    official = KronosPredictor.from_pretrained(
        "NeoQuasar/Kronos-small",
        "NeoQuasar/Kronos-Tokenizer-base",
        local_files_only=True,
        device="cpu",
        max_context=512,
    )
    bars = read_candles_csv(data / "regression_input.csv")  # naive times: wall clock as given
    failures = 0
    for context, (ts, row) in FIRST_ROW.items():
        history, nxt = bars.head(context), bars.slice(context, 8)
        fc = official.forecast(history, nxt["ts"], n_paths=1, temperature=1.0, top_k=1, top_p=1.0, seeds=0)
        try:
            assert str(fc.timestamps[0]).replace("T", " ").startswith(ts), fc.timestamps[0]
            np.testing.assert_allclose(fc.paths[0, 0], row, rtol=1e-5)
            expected = data / f"regression_output_{context}.csv"
            if expected.is_file():
                np.testing.assert_allclose(fc.paths[0], pl.read_csv(expected).select(FEATURES).to_numpy(), rtol=1e-5)
            print(f"context {context}: matches the official output")
        except AssertionError as exc:
            failures += 1
            print(f"context {context}: MISMATCH {exc}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
