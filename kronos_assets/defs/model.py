"""Model: the weights of every Kronos checkpoint the profile forecasts with, fetched and verified."""

import os

import dagster as dg

from kronos_assets.settings import ModelSettings, Settings


def weights_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(f"kronos_weights_{model.replace('-', '_')}")


def kronos_models(settings: Settings) -> list[ModelSettings]:
    return [settings.models[name] for name in settings.forecasters if name in settings.models]


def build_weights(model: ModelSettings) -> dg.AssetsDefinition:
    where = (f"the local folders {model.local_dir}/model and /tokenizer" if model.local_dir
             else f"{model.repo}@{model.revision[:10]} with {model.tokenizer_repo}@{model.tokenizer_revision[:10]}")

    @dg.asset(
        key=weights_key(model.key),
        group_name="model",
        kinds={"pytorch", "huggingface"},
        owners=["team:ml"],
        description=(f"Kronos weights '{model.key}': {where}. Downloads the pinned revision into the Hugging Face "
                     "cache (or reads the local folders), verifies the files (sha256 of official releases, tensor "
                     "names and shapes against config.json) and records their identity. Offline (HF_HUB_OFFLINE=1) "
                     "it succeeds from a filled cache, and otherwise says which command pre-downloads them."),
    )
    def weights(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from kronos_assets.kronos.hub import load_checkpoint, predownload

        if model.local_dir:
            infos = {part: load_checkpoint(model.local_dir / part, kind=part).info for part in ("model", "tokenizer")}
        else:
            cache = os.environ.get("KRONOS_HF_CACHE")  # else huggingface_hub's own (HF_HOME / HF_HUB_CACHE)
            infos = {
                "model": predownload(model.repo, model.revision, kind="model", cache_dir=cache),
                "tokenizer": predownload(model.tokenizer_repo, model.tokenizer_revision, kind="tokenizer",
                                         cache_dir=cache),
            }
        meta: dict = {}
        for part, info in infos.items():
            meta |= {
                f"{part}_repo": info.repo_id or "local folder",
                f"{part}_revision": info.revision or "n/a",
                f"{part}_path": dg.MetadataValue.path(info.path),
                f"{part}_sha256": info.sha256.get("model.safetensors", ""),
                f"{part}_parameters": dg.MetadataValue.int(info.parameter_count),
                f"{part}_size_mb": dg.MetadataValue.float(round(info.size_bytes / 2**20, 2)),
                f"{part}_official": info.official or "no",
            }
        context.log.info(f"{model.key}: {meta['model_parameters'].value:,} parameters verified")
        return dg.MaterializeResult(metadata=meta)

    return weights
