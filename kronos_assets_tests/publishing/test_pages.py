"""The pages rendered from templates: names and sentences from the data are escaped, never markup."""

from __future__ import annotations

import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.publishing import pages
from kronos_assets.publishing.pages import chart_page, dashboard_html, script_json
from kronos_assets_tests.helpers import published_snapshot

EVIL = "<script>alert(1)</script>"


def _evil_snapshot(snap: dict) -> tuple[dict, list[dict]]:
    """The snapshot with a symbol, a model name and a verdict sentence that carry a script element, and one
    scoreboard row of that model."""
    model = f'm"><img src=x onerror=alert(2)>{EVIL}'
    evil = snap | {
        "symbol": f"{EVIL}/USDT",
        "primary_model": model,
        "forecasts": snap["forecasts"] | {model: snap["forecasts"][snap["primary_model"]]},
        "verdict": snap["verdict"] | {"sentence": f"{EVIL} wins"},
    }
    row = {"symbol": evil["symbol"], "timeframe": snap["timeframe"], "model": model, "n_forecasts": 3}
    return evil, [row]


def _script_tags(page: str) -> list[str]:
    """The script elements' opening tags; a src only as "src" (a figures file's name holds its series' name and
    its content's hash)."""
    return [re.sub(r'src="[^"]*"', "src", tag) for tag in re.findall(r"<script[^>]*>", page)]


def test_names_and_sentences_are_escaped_in_the_dashboard_and_chart_page(site_data):
    btc = published_snapshot(site_data.publish_dir)
    evil, board = _evil_snapshot(btc)
    clean_page = dashboard_html([btc], [], btc["origin"], True)
    page = dashboard_html([evil], board, evil["origin"], True)
    # The markup the data carry is text on the page: no new element, no attribute broken out of.
    assert _script_tags(page) == _script_tags(clean_page)
    assert EVIL not in page and "<img" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # heading, model, verdict, table cell
    assert "m&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    chart = chart_page(evil).decode()
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;/USDT 1h forecast</title>" in chart
    assert EVIL not in chart


def test_script_json_keeps_json_inside_its_script_element():
    assert script_json('{"a": "</script><b>"}') == '{"a": "<\\/script><b>"}'
    assert json.loads(str(script_json('["</x>"]'))) == ["</x>"]  # still the same JSON value


def test_every_template_file_is_package_data():
    """A wheel carries only what pyproject's package-data names (an editable install finds every file anyway)."""
    package_data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["kronos_assets.publishing"]
    root = Path(pages.__file__).parent
    files = [p.relative_to(root).as_posix() for p in (root / "templates").rglob("*") if p.is_file()]
    assert {f.rsplit(".", 1)[-1] for f in files} >= {"j2", "css", "js"}
    unpackaged = [f for f in files if not any(fnmatch(f, pat) and f.count("/") == pat.count("/") for pat in patterns)]
    assert unpackaged == []
