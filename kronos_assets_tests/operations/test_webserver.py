"""dagster-webserver serving workspace.yaml, asked through its GraphQL API: the location loads cleanly and shows
every asset, the partitions, the asset checks, the schedules and the sensors the definitions declare."""

from __future__ import annotations

import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.defs.factory import build_definitions
from kronos_assets_tests.helpers import small_settings
from kronos_assets_tests.operations.servers import VENV_BIN, background, free_port, graphql, kronos_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LOCATION = "kronos_assets"
REPOSITORY = "__repository__"
LOAD_TIMEOUT_S = 90

WORKSPACE_Q = """{ workspaceOrError { __typename
  ... on PythonError { message }
  ... on Workspace { locationEntries { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } ... on RepositoryLocation { name } } } } } }"""
ASSETS_Q = """{ assetNodes { assetKey { path } assetChecksOrError { __typename
  ... on AssetChecks { checks { name } } ... on AssetCheckNeedsMigrationError { message } } } }"""
PARTITIONS_Q = """query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionKeys } } }"""
AUTOMATION_Q = """query ($repo: RepositorySelector!) {
  schedulesOrError(repositorySelector: $repo) { __typename ... on Schedules { results { name cronSchedule } }
    ... on PythonError { message } }
  sensorsOrError(repositorySelector: $repo) { __typename ... on Sensors { results { name } }
    ... on PythonError { message } } }"""


def test_webserver_serves_the_whole_location(tmp_path: Path):
    t0 = time.monotonic()
    settings = small_settings(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    log = tmp_path / "webserver.log"

    def gql(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return graphql(port, query, variables)

    def loaded():
        try:
            entries = gql(WORKSPACE_Q)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return entries if entries and all(e["loadStatus"] == "LOADED" for e in entries) else None

    args = [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    with background(args, kronos_env(tmp_path, home), REPO_ROOT, log) as server:
        entries = wait_until(loaded, LOAD_TIMEOUT_S, "the code location to load", proc=server, log=log)
        load_s = time.monotonic() - t0
        assert [e["name"] for e in entries] == [LOCATION]
        assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries

        # What the webserver shows must be what the definitions declare for the same configuration.
        repo = build_definitions(settings).get_repository_def()
        graph = repo.asset_graph

        nodes = gql(ASSETS_Q)["assetNodes"]
        shown = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert shown == {k.to_user_string() for k in graph.get_all_asset_keys()}
        checks = set()
        for n in nodes:
            result = n["assetChecksOrError"]
            assert result["__typename"] == "AssetChecks", result
            checks |= {f"{'/'.join(n['assetKey']['path'])}:{c['name']}" for c in result["checks"]}
        assert checks == {k.to_user_string() for k in graph.asset_check_keys}
        assert checks, "no asset checks shown"

        node = gql(PARTITIONS_Q, {"key": {"path": ["1h", "raw_candles"]}})["assetNodeOrError"]
        assert node["__typename"] == "AssetNode"
        expected = graph.get(
            next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "1h/raw_candles")
        ).partitions_def.get_partition_keys()
        assert node["partitionKeys"] == list(expected)
        assert node["partitionKeys"][:2] == ["2024-01-01|BTC-USDT", "2024-01-01|ETH-USDT"]

        auto = gql(AUTOMATION_Q, {"repo": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}})
        assert auto["schedulesOrError"]["__typename"] == "Schedules", auto
        assert auto["sensorsOrError"]["__typename"] == "Sensors", auto
        schedules = {s["name"]: s["cronSchedule"] for s in auto["schedulesOrError"]["results"]}
        assert schedules == {s.name: s.cron_schedule for s in repo.schedule_defs}
        assert schedules["candles_1h_schedule"] == "5 * * * *"
        sensors = {s["name"] for s in auto["sensorsOrError"]["results"]}
        assert sensors == {s.name for s in repo.sensor_defs}
        assert {"forecast_1h_automation", "forecast_uploads_1h_after_candles", "uploaded_candles"} <= sensors

    text = log.read_text(errors="replace")
    lower = text.lower()
    assert "pythonerror" not in lower and "traceback" not in lower, text[-4000:]
    assert "error loading" not in lower and "does not match the name" not in lower, text[-4000:]
    location_warnings = [
        ln for ln in text.splitlines() if "warn" in ln.lower() and ("location" in ln.lower() or LOCATION in ln)
    ]
    assert not location_warnings, location_warnings
    assert load_s < 60, f"the location took {load_s:.0f} s to load"
