"""The ad-hoc forecast the way a person uses it: dagster-webserver serving the demo profile, the job launched
through the launchpad's GraphQL mutation (no edits, edited settings, a value the config schema refuses), the runs
awaited, the materialisation's metadata read back; and in headless Chromium the run page shows the chart."""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.error
from pathlib import Path
from typing import Any, Iterator

import pytest

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.defs.adhoc import ADHOC_JOB
from kronos_assets.publishing.text_chart import LEGEND
from kronos_assets_tests.operations.servers import VENV_BIN, background, free_port, graphql, kronos_env, wait_until
from kronos_assets_tests.publishing.cdp import Browser, find_chromium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LOAD_TIMEOUT_S = 90
RUN_TIMEOUT_S = 120
RESULTS = REPO_ROOT / "benchmarks" / "results"
SELECTOR = {"repositoryLocationName": "kronos_assets", "repositoryName": "__repository__", "jobName": ADHOC_JOB}
LAUNCH = """mutation ($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message } } }"""
RUN = """query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
MATERIALISATION = """{ assetNodeOrError(assetKey: {path: ["adhoc_forecast"]}) { __typename
  ... on AssetNode { assetMaterializations(limit: 5) { runId metadataEntries { label __typename
    ... on MarkdownMetadataEntry { mdStr } ... on PathMetadataEntry { path } ... on JsonMetadataEntry { jsonString }
    ... on FloatMetadataEntry { floatValue } ... on TextMetadataEntry { text } } } } } }"""


class Server:
    def __init__(self, port: int, home: Path):
        self.port, self.home = port, home

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return graphql(self.port, query, variables)

    def launch(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the launchpad's Launch button sends: the job and the run config in its editor."""
        run_config = {"ops": {"adhoc_forecast": {"config": config}}} if config else {}
        params = {"selector": SELECTOR, "runConfigData": run_config, "mode": "default"}
        return self.gql(LAUNCH, {"p": params})["launchPipelineExecution"]

    def finished(self, run_id: str) -> str:
        def done():
            status = self.gql(RUN, {"id": run_id})["runOrError"]["status"]
            return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

        return wait_until(done, RUN_TIMEOUT_S, f"run {run_id} to finish")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One webserver for every test here: the shipped configs (the demo profile: a replay of the shipped real
    Binance candles), runs launched at once."""
    root = tmp_path_factory.mktemp("adhoc-ui")
    shutil.copytree(REPO_ROOT / "configs", root / "configs")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n"
        "  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    port, log = free_port(), root / "webserver.log"
    srv = Server(port, root / "home")

    def loaded():
        try:
            entries = srv.gql("{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        entries = entries["workspaceOrError"]["locationEntries"]
        return entries and all(e["loadStatus"] == "LOADED" for e in entries)

    args = [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    with background(args, kronos_env(root, home, {"KRONOS_PROFILE": "demo"}), REPO_ROOT, log) as proc:
        wait_until(loaded, LOAD_TIMEOUT_S, "the code location to load", proc=proc, log=log)
        yield srv


EDITED = {
    "symbol": "ETH/USDT",
    "model": "random_walk_vol",
    "horizon": 6,
    "holdout": 8,
    "lookback": 64,
    "n_paths": 50,
    "seed": 1,
}


@pytest.fixture(scope="module")
def runs(server: Server) -> dict[str, str]:
    """Two launches at once (they run side by side): no edits, as a person would on first opening the launchpad,
    and edited settings. (A misspelt model fails at run start: test_adhoc_job checks the message in process.)"""
    launched = {"default": server.launch(), "edited": server.launch(EDITED)}
    for what, result in launched.items():
        assert result["__typename"] == "LaunchRunSuccess", (what, result)
    ids = {what: result["run"]["runId"] for what, result in launched.items()}
    status = {what: server.finished(run_id) for what, run_id in ids.items()}
    assert status == {"default": "SUCCESS", "edited": "SUCCESS"}
    return ids


def metadata(server: Server, run_id: str) -> dict[str, Any]:
    node = server.gql(MATERIALISATION)["assetNodeOrError"]
    [mat] = [m for m in node["assetMaterializations"] if m["runId"] == run_id]
    return {e["label"]: e for e in mat["metadataEntries"]}


def test_launch_with_no_edits_then_with_settings_and_read_the_metadata(server: Server, runs: dict[str, str]):
    entries = metadata(server, runs["default"])
    png = server.home / "demo" / "adhoc" / runs["default"] / "forecast.png"
    assert entries["chart_png"]["path"] == str(png)
    chart = entries["chart"]["mdStr"]
    assert chart.startswith("![forecast](data:image/png;base64,")
    assert base64.b64decode(chart.split(",", 1)[1].split(")", 1)[0]) == png.read_bytes()
    assert "| kronos-demo |" in chart and "| random_walk_vol |" in chart
    assert entries["metrics"]["__typename"] == "TableMetadataEntry"
    prov = json.loads(entries["provenance"]["jsonString"])
    assert prov["model"] == "kronos-demo" and prov["source"]["kind"] == "replay" and prov["held_out"][2] == 24
    assert entries["mae"]["floatValue"] > 0

    # Edited settings: another market, a baseline as the model, a shorter horizon and its own holdout.
    entries = metadata(server, runs["edited"])
    prov = json.loads(entries["provenance"]["jsonString"])
    assert entries["series"]["text"] == "ETH/USDT 1h" and prov["model"] == "random_walk_vol"
    assert prov["sampling"]["n_paths"] == 50 and prov["sampling"]["horizon"] == 6 and prov["held_out"][2] == 8
    assert prov["history"][2] == 64


def test_a_device_outside_the_list_is_refused_by_the_launchpad(server: Server):
    refused = server.launch({"device": "gpu"})
    assert refused["__typename"] == "RunConfigValidationInvalid"
    assert refused["errors"][0]["message"] == (
        "Value at path root:ops:adhoc_forecast:config:device not in enum type Device got gpu"
    )


# The text chart's log row: its text node, whether any ancestor clips it, and how it is laid out.
CHART_ROW = """(() => {
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walk.nextNode()) && !(node.data.includes(LEGEND) && node.data.includes('forecast at'))) {}
  if (!node) return null;
  node.parentElement.scrollIntoView({block: 'center'});
  const range = document.createRange();
  range.selectNodeContents(node);
  const box = range.getBoundingClientRect();
  let clippedBy = null;
  for (let a = node.parentElement; a && !clippedBy; a = a.parentElement) {
    const style = getComputedStyle(a), b = a.getBoundingClientRect();
    if (style.overflowY !== 'visible' && (box.top < b.top - 1 || box.bottom > b.bottom + 1)) clippedBy = a.className;
  }
  const style = getComputedStyle(node.parentElement);
  return {top: box.top, bottom: box.bottom, height: box.height, lines: node.data.split('\\n').length,
          clippedBy, whiteSpace: style.whiteSpace, font: style.fontFamily, viewport: innerHeight};
})()"""
SKIP_DIALOG = """[...document.querySelectorAll('[role=dialog] button')].filter(b => b.innerText.trim() === 'Skip')
  .forEach(b => b.click())"""
# The scores table of the materialisation row (the innermost table, not in a dialog).
SCORES_TABLE = """[...document.querySelectorAll('table')]
  .filter(t => !t.closest('[role=dialog]') && !t.querySelector('table'))
  .map(t => t.innerText).filter(t => t.includes('kronos-demo') && t.includes('P(up) hit'))"""


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (or set KRONOS_CHROMIUM)")
def test_the_run_page_shows_the_chart_without_a_click(server: Server, runs: dict[str, str], tmp_path: Path):
    browser = Browser(find_chromium(), tmp_path / "chromium-profile", timeout_s=60)
    try:
        browser.set_viewport(1400, 1000)
        chart_row = CHART_ROW.replace("LEGEND", json.dumps(LEGEND))
        browser.open(f"http://127.0.0.1:{server.port}/runs/{runs['default']}", f"({chart_row}) !== null")
        browser.pump(2.0)  # a first visit may open Dagster's "Join the community" dialog: skip it as a person would
        browser.evaluate(SKIP_DIALOG)
        browser.pump(0.5)
        row = browser.evaluate(chart_row)
        # Every line of the chart is on screen, nothing clips it, and it keeps its columns.
        assert row["clippedBy"] is None and row["lines"] == 11, row
        assert 0 <= row["top"] and row["bottom"] <= row["viewport"] and row["height"] >= 11 * 10, row
        assert row["whiteSpace"] in ("pre", "pre-wrap") and "mono" in row["font"].lower(), row
        scores = browser.evaluate(SCORES_TABLE)
        assert scores and all("random_walk_vol" in t and "n/a" in t for t in scores), scores  # n/a: RW's P(up)
        browser.pump(1.0)  # fonts settle before the picture
        shot = tmp_path / "adhoc-forecast.png"
        browser.screenshot(shot, full_page=False)
        assert shot.stat().st_size > 50_000
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, RESULTS / "adhoc-forecast.png")

        # The PNG chart stays one click away, in the materialisation's [Show Markdown].
        browser.evaluate(
            "[...document.querySelectorAll('button, a')].find(e => e.innerText === '[Show Markdown]').click()"
        )
        drawn = (
            "[...document.querySelectorAll('[role=dialog] img')].filter(i => i.src.startsWith("
            "'data:image/png;base64,') && i.naturalWidth > 0).map(i => [i.naturalWidth, i.naturalHeight])"
        )
        deadline = time.monotonic() + 30
        while not (sizes := browser.evaluate(drawn)):
            assert time.monotonic() < deadline, "the PNG chart did not appear in the run page's dialog"
            browser.pump(0.2)
        assert sizes == [[1000, 480]]
        assert [e for e in browser.errors() if "HTTP 4" in e or "exception" in e] == []
    finally:
        browser.close()
