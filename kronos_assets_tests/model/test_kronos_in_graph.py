"""Kronos through the graph: the weights asset (local folder, offline hub cache, missing cache) and forecasts by a
Kronos checkpoint stored with full paths and provenance."""

import json
from datetime import timedelta

import dagster as dg
import pytest
import yaml

from kronos_assets.configuration.settings import load_settings
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import bar_key
from kronos_assets.defs.resources import build_resources
from kronos_assets.kronos.hub import install_into_cache, save_checkpoint
from kronos_assets_tests.foundation.test_assets import HOUR, D
from kronos_assets_tests.helpers import published_snapshot, write_configs
from kronos_assets_tests.kronos.conftest import tiny_networks

FAKE_REV = "0123456789abcdef0123456789abcdef01234567"
# A hub-hosted tiny model pinned at FAKE_REV, served from a pre-filled cache.
HUB_SPEC = {
    "repo": "acme/Kronos-tiny",
    "revision": FAKE_REV,
    "tokenizer_repo": "acme/Kronos-Tokenizer-tiny",
    "tokenizer_revision": FAKE_REV,
    "max_context": 128,
    "device": "cpu",
}


def _settings(tmp_path, model_spec):
    cfg = write_configs(tmp_path, profile={"forecasters": ["random_walk_vol", "tiny"], "primary_model": "tiny"})
    models = yaml.safe_load((cfg / "models.yaml").read_text())
    models["models"]["tiny"] = model_spec
    (cfg / "models.yaml").write_text(yaml.safe_dump(models))
    return load_settings("demo", config_dir=cfg, home=tmp_path / "home")


def _offline(monkeypatch):
    """HF_HUB_OFFLINE=1, also for the huggingface_hub already imported (it reads the variable at import)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _save_tiny(folder):
    model, tokenizer = tiny_networks()
    save_checkpoint(model, folder / "model")
    save_checkpoint(tokenizer, folder / "tokenizer")
    return folder


def _materialize_weights(defs, instance):
    job = dg.define_asset_job("weights", selection=["kronos_weights_tiny"])
    return (
        dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        .resolve_job_def("weights")
        .execute_in_process(instance=instance, raise_on_error=False)
    )


def test_local_checkpoint_forecasts_through_the_graph(tmp_path):
    folder = _save_tiny(tmp_path / "ckpt")
    settings = _settings(tmp_path, {"local_dir": str(folder), "max_context": 128, "device": "cpu"})
    resources = build_resources(settings)
    defs = build_definitions(settings, resources)
    instance = dg.DagsterInstance.ephemeral()
    weights = _materialize_weights(defs, instance)
    assert weights.success
    meta = weights.get_asset_materialization_events()[0].materialization.metadata
    assert meta["model_parameters"].value > 0 and len(meta["model_sha256"].value) == 64

    k = D + 12 * HOUR
    defs.resolve_job_def("candles_1h").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{(D - timedelta(days=3)):%Y-%m-%d}|BTC-USDT",
            "dagster/asset_partition_range_end": f"{D:%Y-%m-%d}|BTC-USDT",
        },
    )
    assert (
        defs.resolve_job_def("forecast_1h")
        .execute_in_process(instance=instance, partition_key=str(bar_key("BTC/USDT", k)))
        .success
    )
    wh = resources["warehouse"].get()
    head = wh.query("SELECT * FROM forecasts WHERE model = 'tiny'")
    assert head.height == 1
    prov = json.loads(head["provenance"][0])
    assert prov["model_sha256"] == meta["model_sha256"].value
    paths = wh.query("SELECT close FROM forecast_paths WHERE model = 'tiny' ORDER BY path")
    assert paths.height == settings.sampling.n_paths and all(len(c) == 6 for c in paths["close"].to_list())
    # The dashboard leads with the primary model.
    latest = published_snapshot(settings.publish_dir)
    assert latest["primary_model"] == "tiny" and "tiny" in latest["forecasts"]


def test_weights_from_an_offline_hub_cache_and_a_clear_error_without_it(tmp_path, monkeypatch):
    folder = _save_tiny(tmp_path / "ckpt")
    cache = tmp_path / "hf-cache"
    install_into_cache(folder / "model", "acme/Kronos-tiny", FAKE_REV, cache_dir=cache)
    install_into_cache(folder / "tokenizer", "acme/Kronos-Tokenizer-tiny", FAKE_REV, cache_dir=cache)
    _offline(monkeypatch)
    monkeypatch.setenv("KRONOS_HF_CACHE", str(cache))
    settings = _settings(tmp_path, HUB_SPEC)
    defs = build_definitions(settings, build_resources(settings))
    ok = _materialize_weights(defs, dg.DagsterInstance.ephemeral())
    assert ok.success
    meta = ok.get_asset_materialization_events()[0].materialization.metadata
    assert meta["model_repo"].value == "acme/Kronos-tiny" and meta["model_revision"].value == FAKE_REV

    monkeypatch.setenv("KRONOS_HF_CACHE", str(tmp_path / "empty-cache"))
    failed = _materialize_weights(defs, dg.DagsterInstance.ephemeral())
    assert not failed.success
    err = str(next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
    assert "acme/Kronos-tiny" in err and FAKE_REV in err and "download" in err


def test_a_missing_local_checkpoint_fails_at_load(tmp_path):
    from kronos_assets.configuration.settings import ConfigError

    with pytest.raises(ConfigError, match=r"models.tiny.local_dir: .*(config.json|model.safetensors) not found"):
        _settings(tmp_path, {"local_dir": str(tmp_path / "nowhere"), "max_context": 128})


REV_B = "fedcba9876543210fedcba9876543210fedcba98"


def test_new_hub_revision_is_proposed_and_compared_never_switched(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    pinned, candidate = _save_tiny(tmp_path / "a"), tmp_path / "b"
    model_b, _ = tiny_networks(seed=1)
    save_checkpoint(model_b, candidate / "model")
    install_into_cache(pinned / "model", "acme/Kronos-tiny", FAKE_REV, cache_dir=cache)
    install_into_cache(candidate / "model", "acme/Kronos-tiny", REV_B, cache_dir=cache, ref=None)
    install_into_cache(pinned / "tokenizer", "acme/Kronos-Tokenizer-tiny", FAKE_REV, cache_dir=cache)
    _offline(monkeypatch)
    monkeypatch.setenv("KRONOS_HF_CACHE", str(cache))
    settings = _settings(tmp_path, HUB_SPEC)
    defs = build_definitions(settings, build_resources(settings))
    instance = dg.DagsterInstance.ephemeral()

    import huggingface_hub

    heads = {"acme/Kronos-tiny": REV_B, "acme/Kronos-Tokenizer-tiny": FAKE_REV}
    monkeypatch.setattr(
        huggingface_hub.HfApi, "model_info", lambda self, repo, revision=None: type("Info", (), {"sha": heads[repo]})()
    )
    sensor = defs.resolve_sensor_def("kronos_hub_revisions")
    ctx = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
    (req,) = sensor.evaluate_tick(ctx).run_requests
    cfg = req.run_config["ops"]["model_revision_comparison"]["config"]
    assert cfg == {"model": "tiny", "candidate_model_revision": REV_B}
    again = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=ctx.cursor, repository_def=defs.get_repository_def())
    )
    assert not again.run_requests  # proposed once

    defs.resolve_job_def("candles_1h").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{(D - timedelta(days=3)):%Y-%m-%d}|BTC-USDT",
            "dagster/asset_partition_range_end": f"{D:%Y-%m-%d}|BTC-USDT",
        },
    )
    cfg["origins"] = 4
    result = defs.resolve_job_def("compare_model_revision").execute_in_process(
        instance=instance, run_config={"ops": {"model_revision_comparison": {"config": cfg}}}
    )
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["candidate"].value == f"acme/Kronos-tiny@{REV_B}" and meta["pinned"].value.endswith(FAKE_REV)
    assert (
        "| pinned | 4 |" in meta["scores_at_horizon_end"].value
        and "| candidate | 4 |" in meta["scores_at_horizon_end"].value
    )
    assert settings.models["tiny"].revision == FAKE_REV  # the pin is untouched
