"""deploy/: the instance YAML files validate against Dagster's own schemas (the ECS run launcher's included), and
the Helm values and the README say the same as deploy/dagster.yaml."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from kronos_assets.configuration.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "dagster",
    "KRONOS_DAGSTER_LOG_BUCKET": "logs",
}
SHARED_SECTIONS = (
    "storage",
    "run_coordinator",
    "concurrency",
    "run_monitoring",
    "run_retries",
    "sensors",
    "schedules",
    "code_servers",
    "telemetry",
)


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _validate_instance(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from dagster._core.instance.config import dagster_instance_config

    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / name.replace(".", "_")
    home.mkdir()
    shutil.copy(DEPLOY / name, home / "dagster.yaml")
    config, _ = dagster_instance_config(str(home))
    return config


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _camelize(value):
    if isinstance(value, dict):
        return {(_camel(k) if "/" not in k else k): _camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camelize(v) for v in value]
    return value


def test_dagster_yaml_is_a_valid_postgres_queued_instance(tmp_path, monkeypatch):
    config = _validate_instance("dagster.yaml", tmp_path, monkeypatch)
    db = config["storage"]["postgres"]["postgres_db"]
    assert {v["env"] for k, v in db.items() if isinstance(v, dict)} == {k for k in PG_ENV if k.startswith("DAGSTER_PG")}
    assert db["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = {t["key"]: t["limit"] for t in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert limits["dagster/backfill"] < config["concurrency"]["runs"]["max_concurrent_runs"]
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["enabled"]
    assert "run_launcher" not in config  # the default (subprocess) launcher on one VM


def test_the_pools_the_assets_use_are_the_ones_documented(tmp_path):
    from kronos_assets.defs.factory import build_definitions
    from kronos_assets_tests.helpers import small_settings

    graph = build_definitions(small_settings(tmp_path)).resolve_asset_graph()
    pools = {graph.get(k).assets_def.node_def.pool for k in graph.get_all_asset_keys()} - {None}
    assert pools == {"duckdb_write", "publish", "adhoc"}
    text = (DEPLOY / "dagster.yaml").read_text()
    assert all(p in text for p in pools)


def test_ecs_yaml_validates_and_repeats_dagster_yaml(tmp_path, monkeypatch):
    from dagster._config import Shape, process_config
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    ecs = _validate_instance("ecs-dagster.yaml", tmp_path, monkeypatch)
    base = _load("dagster.yaml")
    for section in SHARED_SECTIONS:
        assert ecs[section] == base[section], section
    assert ecs["run_launcher"]["module"] == "dagster_aws.ecs" and ecs["run_launcher"]["class"] == "EcsRunLauncher"
    launcher = ecs["run_launcher"]["config"]
    result = process_config(Shape(EcsRunLauncher.config_type()), launcher)
    assert result.success, [e.message for e in result.errors]
    logs = process_config(Shape(S3ComputeLogManager.config_type()), ecs["compute_logs"]["config"])
    assert logs.success, [e.message for e in logs.errors]
    # Secrets reach runs as environment variables from Secrets Manager or SSM, never as literal values.
    assert launcher["secrets"] and all(
        re.match(r"arn:aws:(secretsmanager|ssm):", s["valueFrom"]) for s in launcher["secrets"]
    )
    secret_names = {s["name"] for s in launcher["secrets"]}
    assert {"DAGSTER_PG_PASSWORD", "R2_SECRET_ACCESS_KEY"} <= secret_names
    plain = {e.split("=")[0] for e in launcher["env_vars"]}
    assert not plain & secret_names
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_DB", "KRONOS_PROFILE", "KRONOS_HOME"} <= plain
    home = next(e.split("=", 1)[1] for e in launcher["env_vars"] if e.startswith("KRONOS_HOME="))
    mounts = [m["containerPath"] for m in launcher["task_definition"]["mount_points"]]
    assert any(home.startswith(m) for m in mounts), "the home must be on the mounted volume"
    # The warehouse is DuckLake: its credentials reach runs as secrets, and runs are not pinned to one host.
    assert {"KRONOS_LAKE_PG_PASSWORD", "KRONOS_LAKE_S3_KEY_ID", "KRONOS_LAKE_S3_SECRET"} <= secret_names
    assert launcher["run_task_kwargs"] == {"launchType": "FARGATE"}
    assert all("host" not in v for v in launcher["task_definition"]["volumes"])


def test_k8s_values_repeat_dagster_yaml(tmp_path):
    values, base = _load("k8s-values.yaml"), _load("dagster.yaml")
    assert values["concurrency"] == {
        "runs": _camelize(base["concurrency"]["runs"]),
        "pools": _camelize(base["concurrency"]["pools"]),
    }
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    for key in (
        "enabled",
        "start_timeout_seconds",
        "cancel_timeout_seconds",
        "poll_interval_seconds",
        "free_slots_after_run_end_seconds",
    ):
        assert daemon["runMonitoring"][_camel(key)] == base["run_monitoring"][key]
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": base["run_retries"]["max_retries"]}
    assert values["postgresql"]["postgresqlScheme"] == base["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"

    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == workspace["module_name"]
    assert args[args.index("--location-name") + 1] == workspace["location_name"]
    assert deployment["image"]["tag"] != "latest"
    # The warehouse is DuckLake: no node pinning, no ReadWriteOnce claim, its credentials from a Secret.
    run_config = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert "nodeSelector" not in deployment and "nodeSelector" not in run_config.get("podSpecConfig", {})
    assert all("persistentVolumeClaim" not in v for v in deployment["volumes"])
    assert {"name": "kronos-lake"} in deployment["envSecrets"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert any(env["KRONOS_HOME"].startswith(m["mountPath"]) for m in deployment["volumeMounts"])
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True


def test_readme_covers_the_files_and_its_yaml_parses():
    text = (DEPLOY / "README.md").read_text()
    for name in (
        "dagster.yaml",
        "k8s-values.yaml",
        "ecs-dagster.yaml",
        "K8sRunLauncher",
        "EcsRunLauncher",
        "Secrets Manager",
        "SSM",
        "ReadWriteOnce",
        "DuckLake",
        "KRONOS_LAKE_PG_PASSWORD",
        "dagster instance concurrency set duckdb_write",
        "kronos-assets health",
    ):
        assert name in text, name
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        yaml.safe_load(re.sub(r"^ {3}", "", block, flags=re.M))
