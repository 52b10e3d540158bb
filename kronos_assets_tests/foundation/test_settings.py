from datetime import date

import pytest
import yaml

from kronos_assets.settings import ConfigError, load_settings
from kronos_assets_tests.helpers import SMALL_MARKETS, write_configs


def _markets(**changes):
    m = yaml.safe_load(yaml.safe_dump(SMALL_MARKETS))
    for path, value in changes.items():
        node = m
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return m


def _load(tmp_path, markets=None, profile=None, name="demo"):
    cfg = write_configs(tmp_path, markets=markets, profile=profile, profile_name=name)
    return load_settings(name, config_dir=cfg, home=tmp_path / "home", today=date(2026, 11, 21))


def test_repository_configs_load_for_both_profiles():
    demo = load_settings("demo")
    live = load_settings("live")
    assert demo.synthetic and not live.synthetic
    assert demo.primary_model in demo.forecasters
    assert {tf.name for tf in live.timeframes} == {"1h", "4h", "1d"}
    assert live.models["kronos-mini"].revision == "f4e68697d9d5aed55cef5c96aabc3376bcad9f81"


def test_profile_is_chosen_by_environment(monkeypatch):
    monkeypatch.setenv("KRONOS_PROFILE", "live")
    assert load_settings().profile == "live"


def test_small_config_values(tmp_path):
    s = _load(tmp_path)
    assert s.symbols == ("BTC/USDT", "ETH/USDT")
    assert s.timeframe("1h").horizon == 6
    assert s.sampling_for("1h").horizon == 6 and s.sampling_for("1h").n_paths == 30
    assert s.warehouse_path == (tmp_path / "home" / "warehouse.duckdb").resolve()


@pytest.mark.parametrize(
    "markets, field, problem",
    [
        (_markets(**{"timeframes.7m": {"start": "2024-01-01", "history_bars": 64, "horizon": 6}}),
         "timeframes.7m", "unknown timeframe"),
        (_markets(symbols=["BTC/USDT", "btc-usdt"]), "symbols[1]", "bad symbol"),
        (_markets(**{"timeframes.1h.start": "2027-01-01"}), "timeframes.1h.start", "in the future"),
        (_markets(**{"timeframes.1h.horizon": None}), "timeframes.1h.horizon", "missing"),
        (_markets(symbols=None), "symbols", "missing"),
        (_markets(**{"timeframes.1h.history_bars": -3}), "timeframes.1h.history_bars", "positive integer"),
        (_markets(**{"timeframes.1h.start": "first of May"}), "timeframes.1h.start", "not a date"),
        (_markets(exchanges=[{"id": "binance", "base_url": "ftp://x"}]), "exchanges[0].base_url", "http(s) URL"),
    ],
)
def test_bad_markets_name_file_and_field(tmp_path, markets, field, problem):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, markets=markets)
    msg = str(err.value)
    assert "markets.yaml" in msg and f"{field}:" in msg and problem in msg


@pytest.mark.parametrize(
    "profile, field, problem",
    [
        ({"timeframes": ["1h", "1d"]}, "timeframes[1]", "not defined"),
        ({"forecasters": ["random_walk", "prophet"]}, "forecasters[1]", "unknown forecaster"),
        ({"primary_model": "kronos-mini"}, "primary_model", "must be one of"),
        ({"market": "carrier-pigeon"}, "market", "unknown source"),
        ({"publish": {"backend": "ftp"}}, "publish.backend", "unknown backend"),
    ],
)
def test_bad_profile_names_file_and_field(tmp_path, profile, field, problem):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, profile=profile)
    msg = str(err.value)
    assert "demo.yaml" in msg and f"{field}:" in msg and problem in msg


def test_unknown_profile_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile 'staging'"):
        load_settings("staging")
    with pytest.raises(ConfigError, match="live.yaml: file not found"):
        load_settings("live", config_dir=write_configs(tmp_path))


def test_definitions_fail_at_load_on_bad_config(tmp_path, monkeypatch):
    cfg = write_configs(tmp_path, markets=_markets(symbols=["BTC/USDT", "nonsense"]))
    monkeypatch.setenv("KRONOS_CONFIG_DIR", str(cfg))
    from kronos_assets.definitions import defs

    with pytest.raises(ConfigError, match=r"markets.yaml: symbols\[1\]"):
        defs()
