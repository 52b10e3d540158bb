from datetime import date

import pytest
import yaml

from kronos_assets.configuration.settings import ConfigError, load_settings
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


def test_repository_configs_load_for_every_profile():
    demo = load_settings("demo")
    live = load_settings("live")
    synthetic = load_settings("synthetic")
    assert demo.replay and synthetic.synthetic and not live.synthetic and not live.replay
    assert [(s, t, f.name) for s, t, f in demo.replay_files] == [
        ("BTC/USDT", "1h", "binance_BTCUSDT_1h_20240101_20260620.csv.gz"),
        ("ETH/USDT", "1h", "binance_ETHUSDT_1h_20240101_20260331.csv.gz"),
    ]
    assert all(f.is_file() for _, _, f in demo.replay_files)
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
    assert s.warehouse_path == (tmp_path / "home" / "demo" / "warehouse.duckdb").resolve()


def test_each_profile_keeps_its_own_data_under_the_home(tmp_path):
    demo = _load(tmp_path)
    live = _load(tmp_path, name="live", profile={"market": "ccxt"})
    home = (tmp_path / "home").resolve()
    for s in (demo, live):
        for path in (s.warehouse_path, s.publish_dir, s.dagster_home, s.log_path, s.uploads_dir):
            assert path.is_relative_to(home / s.profile), path
    assert demo.warehouse_path != live.warehouse_path and demo.dagster_home != live.dagster_home


@pytest.mark.parametrize(
    "markets, field, problem",
    [
        (
            _markets(**{"timeframes.7m": {"start": "2024-01-01", "history_bars": 64, "horizon": 6}}),
            "timeframes.7m",
            "unknown timeframe",
        ),
        (_markets(symbols=["BTC/USDT", "btc-usdt"]), "symbols[1]", "bad symbol"),
        (_markets(**{"timeframes.1h.start": "2027-01-01"}), "timeframes.1h.start", "in the future"),
        (_markets(**{"timeframes.1h.horizon": None}), "timeframes.1h.horizon", "missing"),
        (_markets(symbols=None), "symbols", "missing"),
        (
            _markets(**{"timeframes.1h.history_bars": -3}),
            "timeframes.1h.history_bars",
            "whole number in 1..20000, got -3",
        ),
        (
            _markets(**{"timeframes.1h.history_bars": 64.5}),
            "timeframes.1h.history_bars",
            "whole number in 1..20000, got 64.5",
        ),
        (_markets(**{"timeframes.1h.horizon": True}), "timeframes.1h.horizon", "whole number in 1..1000, got True"),
        (
            _markets(**{"timeframes.1h.horizon": None, "timeframes.1h.horizn": 6}),
            "timeframes.1h.horizn",
            "unknown key; did you mean 'horizon'?",
        ),
        (
            _markets(**{"timeframes.1h.horizon_bars": 6}),
            "timeframes.1h.horizon_bars",
            "unknown key; did you mean 'horizon'",
        ),
        (_markets(**{"symbol": ["BTC/USDT"]}), "symbol", "unknown key; did you mean 'symbols'"),
        (
            _markets(exchanges=[{"id": "binance", "base_url": None, "option": {}}]),
            "exchanges[0].option",
            "did you mean 'options'",
        ),
        (
            _markets(exchanges=[{"id": "binance", "base_url": None}, {"id": "binance", "base_url": None}]),
            "exchanges[1]",
            "lists exchange 'binance' twice",
        ),
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
        (
            {"forecasters": ["random_walk", "random_walk_vol", "random_walk"]},
            "forecasters[2]",
            "lists forecaster 'random_walk' twice",
        ),
        ({"timeframes": ["1h", "1h"]}, "timeframes[1]", "lists timeframe '1h' twice"),
        ({"publish": {"backend": "local", "folder": "x"}}, "publish.folder", "unknown key; valid here: backend"),
        ({"primary_modle": "random_walk"}, "primary_modle", "did you mean 'primary_model'"),
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


def _models(tmp_path, text):
    cfg = write_configs(tmp_path)
    (cfg / "models.yaml").write_text(text)
    return cfg


@pytest.mark.parametrize(
    "text, field, problem",
    [
        (
            "models: {}\nsampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1, n_path: 3}\n",
            "sampling.n_path",
            "did you mean 'n_paths'",
        ),
        (
            "models: {}\nsampling: {n_paths: 30.0, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "sampling.n_paths",
            "whole number in 1..1000, got 30.0",
        ),
        (
            "models: {}\nsampling: {n_paths: 30, temperature: .nan, top_p: 0.9, top_k: 0, seed: 1}\n",
            "sampling.temperature",
            "finite number > 0",
        ),
        (
            "models: {}\nsampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: -1, seed: 1}\n",
            "sampling.top_k",
            "whole number >= 0, got -1",
        ),
        (
            "models:\n  m: {local_dir: kronos_assets/checkpoints/demo, max_context: 504, devce: cpu}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.devce",
            "did you mean 'device'",
        ),
        (
            "models:\n  m: {local_dir: kronos_assets/checkpoints/demo, max_context: -5}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.max_context",
            "whole number >= 1, got -5",
        ),
        # A kind's options are validated by the kind, as strictly as the rest of the file.
        (
            "models:\n  m: {kind: garh}\nsampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.kind",
            "unknown kind 'garh'; did you mean 'garch'",
        ),
        (
            "models:\n  m: {kind: 7}\nsampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.kind",
            "expected text, got int 7",
        ),
        (
            "models:\n  m: {kind: garch, windw: 500}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.windw",
            "unknown key; did you mean 'window'",
        ),
        (
            "models:\n  m: {kind: garch, window: 10}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.window",
            "whole number >= 50, got 10",
        ),
        (
            "models:\n  m: {kind: garch, repo: NeoQuasar/Kronos-mini}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.repo",
            "unknown key; valid here: ",
        ),
        (
            "models:\n  m: {kind: random_walk_vol, vol_window: 1}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.vol_window",
            "whole number >= 2, got 1",
        ),
        (
            "models:\n  garch_vol: {kind: garch}\n  random_walk: {kind: random_walk}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.random_walk",
            "reserved for a baseline",
        ),
        (
            "models:\n  m: {repo: NeoQuasar/Kronos-mini, max_context: 512}\n"
            "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n",
            "models.m.revision",
            "missing",
        ),
    ],
)
def test_bad_models_name_file_field_and_nearest_key(tmp_path, text, field, problem):
    with pytest.raises(ConfigError) as err:
        load_settings("demo", config_dir=_models(tmp_path, text), home=tmp_path / "home", today=date(2026, 11, 21))
    msg = str(err.value)
    assert "models.yaml" in msg and f"{field}:" in msg and problem in msg, msg


def test_a_key_written_twice_is_an_error(tmp_path):
    cfg = write_configs(tmp_path)
    path = cfg / "profiles" / "demo.yaml"
    path.write_text(path.read_text() + "market: ccxt\n")
    with pytest.raises(ConfigError, match=r"demo.yaml: key 'market' written twice \(lines \d+ and \d+\)"):
        load_settings("demo", config_dir=cfg, home=tmp_path / "home")


def test_unknown_exchange_id_names_file_and_field(tmp_path):
    markets = _markets(exchanges=[{"id": "binance", "base_url": None}, {"id": "binanse", "base_url": None}])
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, markets=markets, name="live", profile={"market": "ccxt"})
    msg = str(err.value)
    assert "markets.yaml: exchanges[1].id: unknown exchange 'binanse'" in msg and "binance" in msg, msg


def test_ccxt_options_are_passed_on_unchecked(tmp_path):
    markets = _markets(exchanges=[{"id": "binance", "base_url": None, "options": {"defaultType": "spot"}}])
    s = _load(tmp_path, markets=markets, name="live", profile={"market": "ccxt"})
    assert s.exchanges[0].options == {"defaultType": "spot"}


@pytest.mark.parametrize(
    "profile, field, problem",
    [
        ({"uploads": {"publish": 1}}, "uploads.publish", "expected true or false, got int 1"),
        ({"uploads": {"stable_looks": 2.0}}, "uploads.stable_looks", "must be a whole number >= 1, got 2.0"),
        ({"uploads": {"max_file_mb": True}}, "uploads.max_file_mb", "expected a number, got bool True"),
        ({"publish": "local"}, "publish", "expected a mapping, got str 'local'"),
        ({"symbols": ["ETH/USDT", "ETH/USDT"]}, "symbols[1]", "lists symbol 'ETH/USDT' twice"),
        # The warehouse section is the warehouse's own schema, its errors in the same form.
        ({"warehouse": {"backnd": "ducklake"}}, "warehouse.backnd", "unknown key; did you mean 'backend'?"),
        ({"warehouse": {"backend": "ducklake"}}, "warehouse", "backend ducklake needs catalog"),
        (
            {"warehouse": {"write_pool_limit": 0}},
            "warehouse.write_pool_limit",
            "input should be greater than or equal to 1, got 0",
        ),
    ],
)
def test_profile_types_are_strict(tmp_path, profile, field, problem):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, profile=profile)
    assert f"demo.yaml: {field}: {problem}" in str(err.value), str(err.value)


@pytest.mark.parametrize("device, ok", [("cuda:1", True), ("auto", True), ("cuda:x", False), ("gpu", False)])
def test_one_device_rule_for_models_and_training(tmp_path, device, ok):
    from kronos_assets.training.config import load_training_config
    from kronos_assets_tests.training.test_config import TINY_RUN, write

    models = (
        "models:\n  m: {local_dir: kronos_assets/checkpoints/demo, max_context: 504, device: '%s'}\n"
        "sampling: {n_paths: 30, temperature: 1.0, top_p: 0.9, top_k: 0, seed: 1}\n" % device
    )
    training = write(tmp_path, {"tiny": {**TINY_RUN, "device": device}})
    for load, field in (
        (
            lambda: load_settings(
                "demo", config_dir=_models(tmp_path, models), home=tmp_path / "h", today=date(2026, 11, 21)
            ),
            "models.m.device",
        ),
        (lambda: load_training_config(training, {}), "runs.tiny.device"),
    ):
        if ok:
            load()
        else:
            with pytest.raises(
                ConfigError, match=rf"{field}: unknown device '{device}'; use auto, cpu, cuda, cuda:N or mps$"
            ):
                load()
