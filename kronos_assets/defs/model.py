"""Model: the weights of every model the profile forecasts with whose kind has weights, fetched and verified."""

import dagster as dg

from kronos_assets.configuration.settings import Settings
from kronos_assets.forecasting.kinds import ModelSpec, kind_of


def weights_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(f"kronos_weights_{model.replace('-', '_')}")


def weighted_models(settings: Settings) -> list[ModelSpec]:
    """The profile's forecasters whose kind has weights to fetch (Kronos checkpoints; not the baselines)."""
    specs = [settings.model_specs[name] for name in settings.forecasters]
    return [spec for spec in specs if kind_of(spec).weights]


def build_weights(spec: ModelSpec) -> dg.AssetsDefinition:
    kind = kind_of(spec)
    assert kind.weights is not None, f"{spec.key}: kind {kind.name} has no weights"
    fetch = kind.weights

    @dg.asset(
        key=weights_key(spec.key),
        group_name="model",
        kinds={"pytorch", "huggingface"},
        owners=["team:ml"],
        description=(
            f"{kind.name} weights '{spec.key}': {kind.describe(spec.options)}. Downloads the pinned revision "
            "into the Hugging Face cache (or reads the local folders), verifies the files (sha256 of official "
            "releases, tensor names and shapes against config.json) and records their identity. Offline "
            "(HF_HUB_OFFLINE=1) it succeeds from a filled cache, and otherwise says which command "
            "pre-downloads them."
        ),
    )
    def weights(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        meta: dict = {}
        for part, info in fetch(spec.options).items():
            meta |= {
                f"{part}_repo": info.repo_id or "local folder",
                f"{part}_revision": info.revision or "n/a",
                f"{part}_path": dg.MetadataValue.path(info.path),
                f"{part}_sha256": info.sha256.get("model.safetensors", ""),
                f"{part}_parameters": dg.MetadataValue.int(info.parameter_count),
                f"{part}_size_mb": dg.MetadataValue.float(round(info.size_bytes / 2**20, 2)),
                f"{part}_official": info.official or "no",
            }
        context.log.info(f"{spec.key}: {meta['model_parameters'].value:,} parameters verified")
        return dg.MaterializeResult(metadata=meta)

    return weights
