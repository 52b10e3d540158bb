"""Model kinds: models.yaml entries name a kind, and the weights asset, the revision sensor, health and the
forecasters resource consult the kind instead of assuming Kronos."""

import dagster as dg
import yaml

from kronos_assets.cli.health import configured
from kronos_assets.configuration.settings import load_settings
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.model import weighted_models
from kronos_assets.defs.resources import build_resources
from kronos_assets.forecasting.baselines import RandomWalkVol
from kronos_assets.forecasting.kinds import KINDS, kind_of
from kronos_assets.forecasting.kinds.garch import GarchForecaster, GarchSettings
from kronos_assets_tests.helpers import published_snapshot, write_configs
from kronos_assets_tests.model.test_kronos_in_graph import HUB_SPEC


def _settings(tmp_path, entries, forecasters, primary="random_walk_vol"):
    cfg = write_configs(tmp_path, profile={"forecasters": forecasters, "primary_model": primary})
    models = yaml.safe_load((cfg / "models.yaml").read_text())
    models["models"].update(entries)
    (cfg / "models.yaml").write_text(yaml.safe_dump(models))
    return load_settings("demo", config_dir=cfg, home=tmp_path / "home")


def test_every_kind_is_registered_once_by_name():
    assert set(KINDS) == {"random_walk", "random_walk_vol", "kronos", "garch"}
    assert [k for k, v in KINDS.items() if v.weights] == ["kronos"]
    assert [k for k, v in KINDS.items() if v.revisions] == ["kronos"]


def test_entries_name_their_kind_and_an_entry_without_one_is_kronos(tmp_path):
    s = _settings(
        tmp_path,
        {
            "tiny": HUB_SPEC,
            "garch-short": {"kind": "garch", "window": 200},
            "rw-vol-72": {"kind": "random_walk_vol", "vol_window": 72},
        },
        ["random_walk", "garch", "garch-short", "rw-vol-72", "tiny"],
        primary="garch",
    )
    assert {k: s.model_specs[k].kind for k in s.forecasters} == {
        "random_walk": "random_walk",
        "garch": "garch",
        "garch-short": "garch",
        "rw-vol-72": "random_walk_vol",
        "tiny": "kronos",
    }
    assert s.model_specs["garch-short"].options == GarchSettings(window=200)
    assert set(s.models) >= {"tiny", "kronos-mini"} and "garch" not in s.models  # the Kronos checkpoints only
    registry = build_resources(s)["forecasters"].get()
    short, rw72 = registry.get("garch-short"), registry.get("rw-vol-72")
    assert isinstance(short, GarchForecaster) and short.name == "garch-short" and short.settings.window == 200
    assert isinstance(rw72, RandomWalkVol) and rw72.name == "rw-vol-72" and rw72.vol_window == 72


def test_weights_revisions_and_health_apply_only_to_kinds_that_have_them(tmp_path, monkeypatch):
    s = _settings(tmp_path, {"tiny": HUB_SPEC}, ["random_walk_vol", "garch", "tiny"], primary="tiny")
    assert [m.key for m in weighted_models(s)] == ["tiny"]
    defs = build_definitions(s, build_resources(s))
    weights = [
        k.to_user_string()
        for k in defs.resolve_asset_graph().get_all_asset_keys()
        if k.to_user_string().startswith("kronos_weights")
    ]
    assert weights == ["kronos_weights_tiny"]

    import huggingface_hub

    asked = []
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "model_info",
        lambda self, repo, revision=None: asked.append(repo) or type("I", (), {"sha": "f" * 40})(),
    )
    sensor = defs.resolve_sensor_def("kronos_hub_revisions")
    (req,) = sensor.evaluate_tick(
        dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), repository_def=defs.get_repository_def())
    ).run_requests
    assert sorted(asked) == ["acme/Kronos-Tokenizer-tiny", "acme/Kronos-tiny"]  # garch has nothing to watch
    assert req.run_config["ops"]["model_revision_comparison"]["config"]["model"] == "tiny"

    row = next(r for r in configured(s) if r.item == "forecasters")
    assert "garch (baseline: GARCH(1,1)-t refitted on the last 1000 log returns" in row.detail
    assert "tiny (acme/Kronos-tiny@0123456789ab)" in row.detail


def test_a_profile_without_kronos_has_no_weights_and_a_stopped_sensor(tmp_path):
    s = _settings(tmp_path, {}, ["random_walk_vol", "garch"], primary="garch")
    assert weighted_models(s) == [] and kind_of(s.model_specs["garch"]).weights is None
    defs = build_definitions(s, build_resources(s))
    assert not [k for k in defs.resolve_asset_graph().get_all_asset_keys() if "weights" in k.to_user_string()]
    assert defs.resolve_sensor_def("kronos_hub_revisions").default_status == dg.DefaultSensorStatus.STOPPED


def test_garch_forecasts_pass_the_sanity_check_and_reach_the_dashboard(tmp_path):
    """Through the graph: stored with NULL volume summaries, the blocking check passes, the page lists it."""
    import json
    from datetime import timedelta

    from kronos_assets.defs.partitions import bar_key
    from kronos_assets_tests.foundation.test_assets import HOUR, D

    s = _settings(tmp_path, {}, ["random_walk", "random_walk_vol", "garch"], primary="garch")
    resources = build_resources(s)
    defs = build_definitions(s, resources)
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("candles_1h").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{(D - timedelta(days=3)):%Y-%m-%d}|BTC-USDT",
            "dagster/asset_partition_range_end": f"{D:%Y-%m-%d}|BTC-USDT",
        },
    )
    result = defs.resolve_job_def("forecast_1h").execute_in_process(
        instance=instance, partition_key=str(bar_key("BTC/USDT", D + 12 * HOUR))
    )
    assert result.success
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "forecasts_sane"]
    assert check.passed, check.metadata
    wh = resources["warehouse"].get()
    steps = wh.query("SELECT model, count(mean_volume) AS v, count(*) AS n FROM forecast_steps GROUP BY model")
    assert dict(zip(steps["model"], steps["v"])) == {"garch": 0, "random_walk": 6, "random_walk_vol": 6}
    prov = json.loads(wh.query("SELECT provenance FROM forecasts WHERE model = 'garch'")["provenance"][0])
    assert prov["garch"]["fit"] in ("ok", "failed") and prov["kind"] == "garch"

    def no_nan(constant):  # NaN/Infinity are not JSON: a browser would refuse the file
        raise AssertionError(f"{constant} in published JSON")

    json.loads((s.publish_dir / "series/BTC-USDT/1h/latest.json").read_text(), parse_constant=no_nan)
    latest = published_snapshot(s.publish_dir)
    assert latest["primary_model"] == "garch" and set(latest["forecasts"]) == {
        "random_walk",
        "random_walk_vol",
        "garch",
    }


def test_a_revision_comparison_of_a_kind_without_revisions_fails_naming_the_model(tmp_path):
    s = _settings(tmp_path, {}, ["random_walk_vol", "garch"], primary="garch")
    defs = build_definitions(s, build_resources(s))
    result = defs.resolve_job_def("compare_model_revision").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"ops": {"model_revision_comparison": {"config": {"model": "garch"}}}},
    )
    (event,) = [e for e in result.all_events if e.is_step_failure]
    assert (
        "'garch' is not a configured model whose kind has revisions"
        in event.step_failure_data.user_failure_data.description
    )


def test_a_kind_registers_itself_and_settings_hold_its_validated_options(tmp_path):
    """A new kind is one module that calls register(): settings.py validates its entries by the registry alone."""
    import pytest

    from kronos_assets.base.config_files import ConfigError, Schema, Whole
    from kronos_assets.forecasting.kinds import Kind, register

    class ToyOptions(Schema):
        window: Whole(1) = 5  # type: ignore[valid-type]

    toy = Kind(
        "toy",
        schema=lambda entry: ToyOptions,
        build=lambda key, o: RandomWalkVol(o.window, name=key),
        describe=lambda o: f"toy of {o.window} bars",
        options=ToyOptions,
    )
    assert register(toy) is toy and register(toy) is toy  # registering the same kind again changes nothing
    try:
        with pytest.raises(ValueError, match="model kind 'toy' is registered twice"):
            register(Kind("toy", toy.schema, toy.build, toy.describe, options=ToyOptions))
        s = _settings(tmp_path / "a", {"toy-7": {"kind": "toy", "window": 7}}, ["random_walk_vol", "toy-7"])
        assert s.model_specs["toy-7"].options == ToyOptions(window=7) and "toy-7" not in s.models
        row = next(r for r in configured(s) if r.item == "forecasters")
        assert "toy-7 (toy of 7 bars)" in row.detail
        with pytest.raises(ConfigError, match=r"models\.toy-0\.window"):
            _settings(tmp_path / "b", {"toy-0": {"kind": "toy", "window": 0}}, ["random_walk_vol"])
    finally:
        KINDS.pop("toy")
    wrong = Kind("wrong", schema=lambda entry: ToyOptions, build=toy.build, describe=toy.describe, options=int)
    with pytest.raises(TypeError, match="kind 'wrong' parsed 'w' to a ToyOptions, not its options type int"):
        wrong.parse("w", {}, tmp_path)
