"""The ``garch`` kind: GARCH(1,1) with Student-t innovations on log returns, the financial econometrics benchmark.

At each origin the model is refitted (``arch``) on the last ``window`` log returns of the request's history, so
only bars closed at or before the origin are ever seen, scaled by 100 as arch recommends for a well-conditioned
fit. Paths are simulated forward from the fitted model and the last conditional variance with the request's own
seed: the same history and seed give the same paths, alone or in any batch. Only close is forecast (the other
fields of the paths are NaN). A fit that fails or does not converge does not stop the run: that origin's paths
are the random walk with volatility's (same seed), and its provenance says so and why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from kronos_assets.base.config_files import Schema, Whole
from kronos_assets.forecasting.baselines import RandomWalkVol
from kronos_assets.forecasting.interface import CLOSE, PATH_FIELDS, ForecastRequest, Sampling
from kronos_assets.forecasting.kinds.base import Kind, register

SCALE = 100.0  # returns in percent
MIN_RETURNS = 50  # fewer and the fit is noise: fall back


class FitFailed(ValueError):
    """The fit ran but its result is unusable (too few or constant returns, no convergence, bad parameters)."""


class GarchSettings(Schema):
    window: Whole(MIN_RETURNS) = 1000  # type: ignore[valid-type]  # most recent log returns each fit sees
    fallback_vol_window: Whole(2) = 168  # type: ignore[valid-type]  # the random walk with volatility on a failed fit


@dataclass(frozen=True)
class GarchFit:
    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float
    last_resid: float  # of the last return, in percent
    last_var: float  # conditional variance of the last return, percent squared

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 8) for k, v in self.__dict__.items()}


def fit(returns: np.ndarray, max_iter: int = 200) -> GarchFit:
    """Fits the model to percent log returns; raises FitFailed when the fit is unusable (it names why)."""
    from arch.univariate import arch_model  # slow to import: only when a fit is asked for

    if returns.size < MIN_RETURNS:
        raise FitFailed(f"{returns.size} returns (< {MIN_RETURNS})")
    if not np.std(returns) > 1e-8:
        raise FitFailed("the returns do not vary (constant prices)")
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arch warns on bad starts and bounds; the flag below decides
        res = model.fit(disp="off", show_warning=False, options={"maxiter": max_iter})
    if res.convergence_flag != 0:
        raise FitFailed(f"the optimiser did not converge (flag {res.convergence_flag})")
    p = res.params
    out = GarchFit(
        float(p["mu"]),
        float(p["omega"]),
        float(p["alpha[1]"]),
        float(p["beta[1]"]),
        float(p["nu"]),
        float(res.resid[-1]),
        float(res.conditional_volatility[-1]) ** 2,
    )
    values = np.array(list(out.__dict__.values()))
    # alpha + beta == 1 (integrated GARCH, where arch's constraint binds on hourly crypto) simulates fine over a
    # horizon; only an explosive or a non-finite fit is refused.
    if not np.isfinite(values).all() or out.nu <= 2 or out.alpha + out.beta > 1 + 1e-6 or out.omega <= 0:
        raise FitFailed(f"unusable parameters {out.as_dict()}")
    return out


def simulate(f: GarchFit, last_close: float, n_paths: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
    """Close paths (n_paths, horizon): returns mu + sigma_t z_t, z_t unit-variance Student-t, the variance updated
    with each path's own shocks."""
    z = rng.standard_t(f.nu, size=(n_paths, horizon)) * np.sqrt((f.nu - 2) / f.nu)
    var = np.full(n_paths, f.omega + f.alpha * f.last_resid**2 + f.beta * f.last_var)
    returns = np.empty((n_paths, horizon))
    for t in range(horizon):
        eps = np.sqrt(var) * z[:, t]
        returns[:, t] = f.mu + eps
        var = f.omega + f.alpha * eps**2 + f.beta * var
    return last_close * np.exp(np.cumsum(returns / SCALE, axis=1))


class GarchForecaster:
    fields = ("close",)

    def __init__(self, name: str = "garch", settings: GarchSettings = GarchSettings()):
        self.name = name
        self.settings = settings
        self._fallback = RandomWalkVol(settings.fallback_vol_window)
        self._fits: dict[tuple[str, str, Any], dict[str, Any]] = {}  # per request of the last batch

    def forecast_batch(self, requests: Sequence[ForecastRequest], sampling: Sampling) -> list[np.ndarray]:
        self._fits = {}
        out = []
        for req in requests:
            closes = req.history["close"].to_numpy().astype(np.float64)[-(self.settings.window + 1) :]
            if closes.size == 0:
                raise ValueError(f"{req.symbol} @ {req.origin}: empty history")
            paths = np.full((sampling.n_paths, sampling.horizon, len(PATH_FIELDS)), np.nan)
            try:
                f = fit(np.diff(np.log(closes)) * SCALE)
                paths[..., CLOSE] = simulate(
                    f, closes[-1], sampling.n_paths, sampling.horizon, np.random.default_rng(req.seed)
                )
                record: dict[str, Any] = {"fit": "ok", "params": f.as_dict(), "n_returns": closes.size - 1}
            except Exception as exc:  # noqa: BLE001 (a third-party optimiser: whatever it raises, it falls back)
                paths[..., CLOSE] = self._fallback.forecast_batch([req], sampling)[0][..., CLOSE]
                reason = str(exc) if isinstance(exc, FitFailed) else f"{type(exc).__name__}: {exc}"
                record = {
                    "fit": "failed",
                    "fallback": self._fallback.name,
                    "reason": reason,
                    "n_returns": closes.size - 1,
                }
            self._fits[(req.symbol, req.timeframe, req.origin)] = record
            out.append(paths)
        return out

    def request_provenance(self, req: ForecastRequest) -> dict[str, Any]:
        return {"garch": self._fits.get((req.symbol, req.timeframe, req.origin), {})}

    def provenance(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "kind": "garch",
            "spec": "GARCH(1,1), constant mean, Student-t, log returns x100",
            "window": self.settings.window,
            "fallback_vol_window": self.settings.fallback_vol_window,
        }


KIND = register(
    Kind(
        "garch",
        lambda entry: GarchSettings,
        build=lambda key, s: GarchForecaster(key, s),
        describe=lambda s: f"baseline: GARCH(1,1)-t refitted on the last {s.window} log returns at each origin",
        options=GarchSettings,
    )
)
