"""A code location for the daemon test: kronos_assets' own, with the warehouse resource made to hold each raw
candles write until as many writers (run processes) have arrived as the folder's ``expected`` file says, so that
runs provably write at the same time however the machine staggers their start (the test raises ``expected`` for
each wave of runs). Each write's window goes to a JSON-lines file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from kronos_assets.configuration.settings import load_settings
from kronos_assets.definitions import code_location
from kronos_assets.defs.resources import build_resources
from kronos_assets.warehouse import Warehouse

BARRIER_DIR_VAR = "KRONOS_TEST_BARRIER_DIR"
BARRIER_WAIT_S = 180.0
RELEASE_DELAY_S = 0.5


class BarrierWarehouse(Warehouse):
    def merge(self, table, frame, keys):
        folder = Path(os.environ[BARRIER_DIR_VAR])
        n = int((folder / "expected").read_text())
        (folder / f"arrived-{os.getpid()}").touch()
        deadline = time.monotonic() + BARRIER_WAIT_S
        while len(arrived := list(folder.glob("arrived-*"))) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        # Released together: every writer sleeps until the same moment, RELEASE_DELAY_S after the last arrival
        # (a write takes ~0.1 s; noticing the last arrival alone would stagger the starts by the polling and
        # scheduling delays, enough for one write to end before another began).
        release = max(p.stat().st_mtime for p in arrived) + RELEASE_DELAY_S
        time.sleep(max(0.0, release - time.time()))
        start = time.time()
        out = super().merge(table, frame, keys)
        with open(folder / "writes.jsonl", "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "table": table, "start": start, "end": time.time()}) + "\n")
        return out


def location():
    settings = load_settings()
    resources = build_resources(settings)
    return code_location(
        settings, {**resources, "warehouse": BarrierWarehouse(settings.warehouse_path, config=settings.warehouse)}
    )
