"""KronosForecaster through the Forecaster protocol: shapes, seeds per request, provenance."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from kronos_assets.forecasting.interface import ForecastRequest, Sampling, run_forecaster
from kronos_assets.forecasting.kronos_forecaster import KronosForecaster
from kronos_assets.kronos.errors import KronosInputError
from kronos_assets.kronos.hub import sha256_file
from kronos_assets.kronos.sampling import SamplingParams

from .conftest import candles, future


def _request(n: int, seed: int, horizon: int = 6, data_seed: int = 0) -> ForecastRequest:
    df = candles(n, seed=data_seed)
    origin = df["ts"][-1] + timedelta(hours=1)
    return ForecastRequest("BTC/USDT", "1h", origin, df, future(df, horizon), seed)


@pytest.fixture(scope="module")
def forecaster(checkpoints: dict[str, Path]) -> KronosForecaster:
    return KronosForecaster(
        checkpoints["model"],
        checkpoints["tokenizer"],
        device="cpu",
        max_context=48,
        context_policy="exact",
        name="kronos-tiny",
    )


def test_paths_depend_only_on_the_request_and_its_seed(forecaster: KronosForecaster) -> None:
    sampling = Sampling(n_paths=5, horizon=6, temperature=1.0, top_p=0.9, top_k=0, seed=0)
    a, b, c = _request(40, 1, data_seed=1), _request(70, 2, data_seed=2), _request(25, 3, data_seed=3)
    together = run_forecaster(forecaster, [a, b, c], sampling)
    alone = forecaster.forecast_batch([b], sampling)[0]
    np.testing.assert_array_equal(together[1].paths, alone)
    assert [f.paths.shape for f in together] == [(5, 6, 6)] * 3
    other_seed = forecaster.forecast_batch([_request(70, 99, data_seed=2)], sampling)[0]
    assert not np.array_equal(other_seed, alone)
    assert together[0].model == "kronos-tiny"


def test_provenance(forecaster: KronosForecaster, checkpoints: dict[str, Path]) -> None:
    prov = forecaster.provenance()
    assert prov["model_path"] == str(checkpoints["model"]) and prov["model_repo"] is None
    assert prov["model_sha256"] == sha256_file(checkpoints["model"] / "model.safetensors")
    assert prov["tokenizer_sha256"] == sha256_file(checkpoints["tokenizer"] / "model.safetensors")
    assert prov["model_parameters"] > 0 and prov["tokenizer_parameters"] > 0
    assert (prov["max_context"], prov["context_policy"], prov["device"]) == (48, "exact", "cpu")
    assert {"model_revision", "tokenizer_repo", "tokenizer_revision", "name"} <= set(prov)


def test_horizon_mismatch_is_rejected_before_any_compute(forecaster: KronosForecaster) -> None:
    with pytest.raises(KronosInputError, match="future timestamps for horizon 8"):
        forecaster.forecast_batch([_request(40, 1)], Sampling(n_paths=2, horizon=8))


def test_a_lone_request_is_one_unpadded_batch_in_the_calling_thread(
    checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly live request costs what a direct call costs: a batch of one, in the caller's thread with the
    predictor's threads; a backtest's many requests still run in batches of batch_size on worker threads."""
    import threading

    import torch

    from kronos_assets.kronos import batching as batching_module

    fc = KronosForecaster(
        checkpoints["model"],
        checkpoints["tokenizer"],
        device="cpu",
        max_context=48,
        num_threads=2,
        batch_size=4,
        workers=2,
    )
    calls: list[tuple[int, bool, int]] = []
    real = batching_module.generate_batch

    def spy(model, tok, s1, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((s1.shape[0], threading.current_thread() is threading.main_thread(), torch.get_num_threads()))
        return real(model, tok, s1, *args, **kwargs)

    monkeypatch.setattr(batching_module, "generate_batch", spy)
    sampling = Sampling(n_paths=3, horizon=4)
    lone = fc.forecast_batch([_request(40, 1, horizon=4)], sampling)[0]
    assert calls == [(1, True, 2)]
    req = _request(40, 1, horizon=4)
    direct = fc.predictor.sample(
        fc.predictor.prepare(req.history, req.future_ts), n_paths=3, seed=1, sampling=SamplingParams()
    )
    np.testing.assert_array_equal(lone, direct.paths)  # the same computation as the direct call
    calls.clear()
    fc.forecast_batch([_request(40, i, horizon=4, data_seed=i) for i in range(10)], sampling)
    assert sorted(c[0] for c in calls) == [2, 4, 4] and not any(c[1] for c in calls) and {c[2] for c in calls} == {1}
