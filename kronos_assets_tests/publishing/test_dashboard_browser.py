"""The dashboard in headless Chromium, from the published folder, from the bucket and after the README's command:
no console errors, every chart drawn, the verdicts on top, readable on a phone. Screenshots are saved for people
to look at (pytest's tmp dir and benchmarks/results/dashboard*.png, git-ignored)."""

from __future__ import annotations

import json
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.defs.publish import publish_config
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.keys import series_keys
from kronos_assets_tests.publishing.cdp import Browser, find_chromium
from kronos_assets_tests.publishing.conftest import env_bucket_store

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium, or set KRONOS_CHROMIUM)"
    ),
]
RESULTS = REPO_ROOT / "benchmarks" / "results"
CHARTS_DRAWN = (
    "document.querySelectorAll('.chart').length > 0 && "
    "[...document.querySelectorAll('.chart')].every(d => d.querySelector('svg.main-svg'))"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


def _keep(shot: Path, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, RESULTS / name)


def test_dashboard_from_the_published_folder(site_data, browser, tmp_path):
    root = site_data.publish_dir
    browser.events.clear()
    browser.set_viewport(1200, 900)
    browser.open((root / "index.html").as_uri(), CHARTS_DRAWN)
    browser.pump(0.3)  # late console messages
    assert browser.errors() == []
    assert browser.evaluate("document.querySelectorAll('.chart svg.main-svg').length") >= 2
    assert browser.evaluate("document.querySelectorAll('section.series').length") == 2
    assert "SYNTHETIC MARKET" in browser.evaluate("document.getElementById('demo-banner').innerText")
    assert browser.evaluate("document.getElementById('age').textContent").endswith("ago")
    fresh = browser.evaluate("[...document.querySelectorAll('.fresh')].map(e => e.textContent)")
    assert len(fresh) == 2 and all(f.startswith("stale") for f in fresh)  # the test data are from 2025
    assert browser.evaluate("document.body.innerText").count("not yet scored") >= 2  # ETH's short record
    shot = tmp_path / "dashboard.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 50_000
    _keep(shot, "dashboard.png")

    # A phone: nothing wider than the screen, charts drawn.
    browser.set_viewport(390, 844, mobile=True)
    browser.open((root / "index.html").as_uri(), CHARTS_DRAWN)
    assert browser.errors() == []
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert browser.evaluate(
        "[...document.querySelectorAll('.chart')].every(d => d.getBoundingClientRect().width <= window.innerWidth)"
    )
    phone = tmp_path / "dashboard-phone.png"
    browser.screenshot(phone)
    _keep(phone, "dashboard-phone.png")

    # A series' own chart page.
    browser.set_viewport(1000, 700)
    page = root / series_keys("ETH/USDT", "1h")["chart.html"]
    browser.open(page.as_uri(), "document.querySelector('#chart svg.main-svg')")
    assert browser.errors() == []


@contextmanager
def public_bucket(s3, bucket: str) -> Iterator[str]:
    """Serves the bucket on 127.0.0.1 the way an R2 public bucket does: GET by key with the stored Content-Type
    and Cache-Control; ``nosniff`` so a wrong content type breaks the page instead of being guessed around."""
    client = s3.client()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            key = self.path.split("?")[0].lstrip("/") or "index.html"
            try:
                obj = client.get_object(Bucket=bucket, Key=key)
            except client.exceptions.NoSuchKey:
                self.send_error(404)
                return
            body = obj["Body"].read()
            self.send_response(200)
            self.send_header("Content-Type", obj["ContentType"])
            self.send_header("Cache-Control", obj.get("CacheControl", ""))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_dashboard_from_the_bucket_alone(site_data, s3_server, bucket, browser):
    store = env_bucket_store()
    for symbol, bars in site_data.bars.items():
        publish_bars(publish_config(site_data.settings), site_data.warehouse, store, {symbol: bars[-1:]}, "1h")
    browser.events.clear()
    with public_bucket(s3_server, bucket) as base:
        browser.set_viewport(1200, 900)
        browser.open(f"{base}/index.html", CHARTS_DRAWN)
        browser.pump(0.3)
        assert browser.errors() == []
        assert browser.evaluate("document.querySelectorAll('.chart svg.main-svg').length") >= 2
        types = {url.rsplit("/", 1)[-1]: r["mimeType"] for url, r in browser.responses().items()}
        assert types["index.html"] == "text/html" and any(t == "text/javascript" for t in types.values())
        browser.open(
            f"{base}/{series_keys('BTC/USDT', '1h')['chart.html']}", "document.querySelector('#chart svg.main-svg')"
        )
        assert browser.errors() == []


def test_dashboard_staleness_follows_the_freshness_rule(site_data, browser):
    """A series is stale once its newest forecast is older than market.rules' warn window (bars plus slack)."""
    from datetime import datetime, timedelta, timezone

    from kronos_assets.market.rules import freshness_windows

    browser.open((site_data.publish_dir / "index.html").as_uri(), CHARTS_DRAWN)
    bar = timedelta(seconds=browser.evaluate("Number(document.querySelector('section.series').dataset.barSeconds)"))
    warn, _ = freshness_windows(bar)
    now = datetime.now(timezone.utc)
    # Inside the slack, then past it; the page's freshness script (its asset) is run again on the edited sections.
    origins = [(now - warn + timedelta(minutes=5)).isoformat(), (now - warn - timedelta(minutes=5)).isoformat()]
    src = browser.evaluate(
        "[...document.scripts].map(s => s.getAttribute('src')).find(s => s && s.includes('freshness-'))"
    )
    script = (site_data.publish_dir / src).read_text()
    fresh = browser.evaluate(
        f"(() => {{ const o = {origins!r}; const ss = [...document.querySelectorAll('section.series')];"
        " ss.forEach((s, i) => { s.dataset.origin = o[i]; });"
        f" eval({json.dumps(script)});"
        " return ss.map(s => s.querySelector('.fresh').textContent); })()"
    )
    assert fresh[0] == "up to date" and fresh[1].startswith("stale"), fresh
    assert browser.evaluate("document.getElementById('freshness').textContent") == "some series are stale"


@pytest.fixture(scope="module")
def readme_site(readme_run) -> Path:
    """The published folder of the README's main command (run once for the session, as a user runs it)."""
    proc = readme_run.proc
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    (record,) = [i for i, line in enumerate(lines) if line.endswith("1h: track record and verdicts")]
    assert lines[record + 1].strip().startswith("done in")  # the main job materialised the track record
    return Path(lines[-1].removeprefix("dashboard: ")).parent


def test_dashboard_after_the_readme_command(readme_site, browser, tmp_path):
    browser.events.clear()
    browser.set_viewport(1200, 900)
    browser.open((readme_site / "index.html").as_uri(), CHARTS_DRAWN)
    browser.pump(0.3)
    assert browser.errors() == []
    # Each series opens with its verdict, word for word the one in its latest.json.
    shown = browser.evaluate(
        "[...document.querySelectorAll('section.series')].map(s => "
        "[s.querySelector('h2').firstChild.textContent.trim(), "
        "s.firstElementChild.nextElementSibling.innerText])"
    )
    assert len(shown) == 2
    for heading, sentence in shown:
        symbol = heading.split(" · ")[0]
        latest = json.loads((readme_site / series_keys(symbol, "1h")["latest.json"]).read_text())
        assert sentence == latest["verdict"]["sentence"]
        assert sentence.startswith(("Over the last 30 days", "Too few independent horizons"))
    # The calibration charts are drawn, each inside its own box.
    assert (
        browser.evaluate(
            "[...document.querySelectorAll('.chart.calib')].filter(d => d.querySelector('svg.main-svg')).length"
        )
        == 4
    )
    assert browser.evaluate(
        "[...document.querySelectorAll('.chart.calib')].every(d => "
        "d.querySelector('svg.main-svg').getBoundingClientRect().width "
        "<= d.getBoundingClientRect().width + 1)"
    )
    shot = tmp_path / "dashboard-readme.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 50_000
    _keep(shot, "dashboard-readme.png")
