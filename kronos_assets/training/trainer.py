"""The training loop: tokenizer stage, then predictor stage; seeded, resumable, with progress reporting.

Determinism: the networks are initialised on the CPU from ``seed``; the batch of every step is drawn from a
generator seeded with (seed, stage, step) (see data.WindowSet); nothing else draws random numbers (the modules have
no dropout). On the CPU with the same thread count, a run is bitwise reproducible and a resumed run bitwise equal to
an uninterrupted one. On a GPU, cuBLAS/cuDNN reductions may differ in the last bits between runs.

Resume state (``state_dir``): ``state.json`` (stage, step, loss history, logging accumulators, run fingerprint,
optimizer hyper-parameters), ``tokenizer/`` and ``model/`` checkpoints (config.json + model.safetensors) and
``optimizer.safetensors`` (AdamW moments and step counts). Only JSON and safetensors: no pickle, no torch.load.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kronos_assets.kronos.config import KronosConfig, TokenizerConfig
from kronos_assets.kronos.hub import load_checkpoint, save_checkpoint
from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.tokenizer import KronosTokenizer
from kronos_assets.training.config import StageSettings
from kronos_assets.training.data import WindowSet
from kronos_assets.training.losses import predictor_losses, tokenizer_losses

log = logging.getLogger("kronos_assets.training")

Stage = Literal["tokenizer", "predictor"]
STAGES: tuple[Stage, ...] = ("tokenizer", "predictor")
STATE_VERSION = 1
_STREAM = {"tokenizer": 1, "predictor": 2}  # batch generator streams per stage


class ResumeError(RuntimeError):
    """A resume state that does not belong to this run (different settings) or cannot be read."""


@dataclass
class TrainEvent:
    """One logging step: mean training loss since the previous one, and the validation loss when computed."""

    stage: Stage
    step: int  # optimizer steps done in this stage
    steps: int  # steps of this stage
    loss: float
    parts: dict[str, float]
    lr: float
    elapsed_s: float
    val_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressCallback = Callable[[TrainEvent], None]


@dataclass
class TrainSpec:
    """What the loop needs from a run's settings (kept small so tests can build one directly)."""

    tokenizer: StageSettings
    predictor: StageSettings
    seed: int = 0
    weight_decay: float = 0.1
    inv_temperature: float = 100.0
    log_every: int = 25
    save_every: int = 200
    val_windows: int = 64
    fingerprint: str = ""


@dataclass
class TrainResult:
    model: Kronos
    tokenizer: KronosTokenizer
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = True
    elapsed_s: float = 0.0
    resumed_from: dict[str, Any] | None = None

    def curve(self, stage: Stage) -> list[dict[str, Any]]:
        return [h for h in self.history if h["stage"] == stage]

    def final(self, stage: Stage) -> dict[str, Any] | None:
        c = self.curve(stage)
        return c[-1] if c else None


# -- initialisation ------------------------------------------------------------------------------------------
def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """GPT-style init for training from scratch: N(0, std) weights, zero biases, unit RMSNorm weights."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, std)


def build_scratch(
    tokenizer_config: TokenizerConfig, model_config: KronosConfig, seed: int
) -> tuple[Kronos, KronosTokenizer]:
    """Fresh networks, initialised on the CPU from the seed (the same weights on every device)."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        tok = KronosTokenizer(tokenizer_config)
        init_weights(tok)
        model = Kronos(model_config)
        init_weights(model)
    finally:
        torch.random.set_rng_state(gen_state)
    return model, tok


def lr_at(stage: StageSettings, step: int) -> float:
    """Linear warm-up to lr over ``warmup`` steps, then cosine decay to lr * min_lr_ratio at the last step."""
    if stage.warmup and step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    span = max(1, stage.steps - stage.warmup)
    t = min(1.0, (step - stage.warmup) / span)
    floor = stage.lr * stage.min_lr_ratio
    return floor + (stage.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(module: nn.Module, stage: StageSettings, weight_decay: float) -> torch.optim.AdamW:
    decay = [p for n, p in module.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in module.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # foreach=False: the same (single-tensor) kernels on every device, which keeps runs reproducible.
    return torch.optim.AdamW(groups, lr=stage.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)


# -- optimizer state as safetensors + JSON -------------------------------------------------------------------
def save_optimizer(opt: torch.optim.Optimizer, path: Path) -> dict[str, Any]:
    """Write the moment tensors to ``path`` (safetensors); return the JSON-able hyper-parameters."""
    sd = opt.state_dict()
    tensors = {
        f"{i}.{k}": v.detach().to("cpu").contiguous()
        for i, st in sd["state"].items()
        for k, v in st.items()
        if isinstance(v, torch.Tensor)
    }
    save_file(tensors, str(path))
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return {"param_groups": groups}


def load_optimizer(opt: torch.optim.Optimizer, path: Path, meta: dict[str, Any]) -> None:
    tensors = load_file(str(path))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


# -- the loop ------------------------------------------------------------------------------------------------
class Trainer:
    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        train: WindowSet,
        spec: TrainSpec,
        *,
        val: WindowSet | None = None,
        device: str | torch.device = "cpu",
        state_dir: str | os.PathLike[str] | None = None,
        callback: ProgressCallback | None = None,
    ) -> None:
        if model.config.s1_bits != tokenizer.config.s1_bits or model.config.s2_bits != tokenizer.config.s2_bits:
            raise ValueError("the model's vocabularies do not match the tokenizer's bits")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tokenizer = tokenizer.to(self.device)
        self.train_set, self.val_set = train, val
        self.spec = spec
        self.state_dir = Path(state_dir) if state_dir else None
        self.callback = callback
        self.history: list[dict[str, Any]] = []
        self.stage_index = 0
        self.step = 0
        self.acc: dict[str, Any] = {"n": 0, "loss": 0.0, "parts": {}}
        self.elapsed_prev = 0.0
        self.opt: torch.optim.AdamW | None = None
        self.resumed_from: dict[str, Any] | None = None

    # -- state ---------------------------------------------------------------------------------------------
    def _stage_settings(self, stage: Stage) -> StageSettings:
        return self.spec.tokenizer if stage == "tokenizer" else self.spec.predictor

    def _trained_module(self, stage: Stage) -> nn.Module:
        return self.tokenizer if stage == "tokenizer" else self.model

    def _new_optimizer(self) -> None:
        stage = STAGES[self.stage_index] if self.stage_index < len(STAGES) else None
        self.opt = (
            None
            if stage is None
            else make_optimizer(self._trained_module(stage), self._stage_settings(stage), self.spec.weight_decay)
        )

    def has_state(self) -> bool:
        return self.state_dir is not None and (self.state_dir / "state.json").is_file()

    def state_matches(self) -> bool:
        """Whether the saved state was written by a run with this fingerprint (settings and candles)."""
        try:
            return json.loads((self.state_dir / "state.json").read_text()).get("fingerprint") == self.spec.fingerprint
        except (OSError, TypeError, json.JSONDecodeError):
            return False

    def save_state(self, elapsed: float) -> None:
        if self.state_dir is None:
            return
        tmp = self.state_dir.with_name(self.state_dir.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_checkpoint(self.tokenizer, tmp / "tokenizer")
        save_checkpoint(self.model, tmp / "model")
        opt_meta = save_optimizer(self.opt, tmp / "optimizer.safetensors") if self.opt is not None else None
        state = {
            "version": STATE_VERSION,
            "fingerprint": self.spec.fingerprint,
            "stage_index": self.stage_index,
            "step": self.step,
            "history": self.history,
            "acc": self.acc,
            "optimizer": opt_meta,
            "elapsed_s": elapsed,
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        if self.state_dir.exists():  # swap in the new state whole: a crash mid-save keeps the previous one
            old = self.state_dir.with_name(self.state_dir.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            self.state_dir.rename(old)
            tmp.rename(self.state_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(self.state_dir)

    def load_state(self) -> None:
        assert self.state_dir is not None
        try:
            state = json.loads((self.state_dir / "state.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResumeError(f"{self.state_dir}/state.json cannot be read: {exc}") from exc
        if state.get("version") != STATE_VERSION:
            raise ResumeError(
                f"{self.state_dir}: state version {state.get('version')} (this code writes {STATE_VERSION})"
            )
        if state.get("fingerprint") != self.spec.fingerprint:
            raise ResumeError(
                f"{self.state_dir} was written by a run with other settings (fingerprint {state.get('fingerprint')}, "
                f"this run {self.spec.fingerprint}); delete the folder or train without resuming"
            )
        for part, module in (("tokenizer", self.tokenizer), ("model", self.model)):
            loaded = load_checkpoint(self.state_dir / part, kind=part).module  # type: ignore[arg-type]
            module.load_state_dict(loaded.state_dict())
        self.stage_index, self.step = int(state["stage_index"]), int(state["step"])
        self.history, self.acc, self.elapsed_prev = state["history"], state["acc"], float(state["elapsed_s"])
        self._new_optimizer()
        if self.opt is not None and state.get("optimizer"):
            load_optimizer(self.opt, self.state_dir / "optimizer.safetensors", state["optimizer"])
        stage = STAGES[self.stage_index] if self.stage_index < len(STAGES) else "done"
        self.resumed_from = {"stage": stage, "step": self.step}
        log.info("resumed from %s at %s step %d", self.state_dir, stage, self.step)

    # -- steps ---------------------------------------------------------------------------------------------
    def _batch_losses(self, stage: Stage, x: torch.Tensor, stamp: torch.Tensor) -> Any:
        if stage == "tokenizer":
            return tokenizer_losses(self.tokenizer, x, self.spec.inv_temperature)
        with torch.no_grad():
            s1, s2 = self.tokenizer.encode(x)
        return predictor_losses(self.model, s1, s2, stamp)

    def validation_loss(self, stage: Stage) -> float | None:
        if self.val_set is None or self.spec.val_windows <= 0:
            return None
        idx = self.val_set.fixed(self.spec.val_windows)
        bs = self._stage_settings(stage).batch_size
        module = self._trained_module(stage)
        was_training = module.training
        module.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(idx), bs):
                b = self.val_set.batch(idx[i : i + bs]).to(self.device)
                total += float(self._batch_losses(stage, b.x, b.stamp).loss) * len(b.x)
                n += len(b.x)
        module.train(was_training)
        return total / max(n, 1)

    def _one_step(self, stage: Stage, settings: StageSettings) -> tuple[float, dict[str, float], float]:
        assert self.opt is not None
        lr = lr_at(settings, self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        b = self.train_set.draw(self.spec.seed, _STREAM[stage], self.step, settings.batch_size).to(self.device)
        out = self._batch_losses(stage, b.x, b.stamp)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self._trained_module(stage).parameters(), settings.grad_clip)
        self.opt.step()
        return float(out.loss.detach()), out.parts(), lr

    def _log(self, stage: Stage, settings: StageSettings, lr: float, elapsed: float) -> None:
        n = self.acc["n"]
        val = self.validation_loss(stage)
        ev = TrainEvent(
            stage,
            self.step,
            settings.steps,
            self.acc["loss"] / n,
            {k: v / n for k, v in self.acc["parts"].items()},
            lr,
            round(elapsed, 3),
            val,
        )
        self.history.append(ev.to_dict())
        self.acc = {"n": 0, "loss": 0.0, "parts": {}}
        extra = " ".join(f"{k} {v:.4f}" for k, v in ev.parts.items())
        vtxt = "" if val is None else f" val {val:.4f}"
        log.info(
            "%s step %d/%d loss %.4f%s (%s) lr %.2e %.1fs", stage, ev.step, ev.steps, ev.loss, vtxt, extra, lr, elapsed
        )
        if self.callback is not None:
            self.callback(ev)

    def fit(self, *, resume: bool = False, max_steps: int | None = None) -> TrainResult:
        """Train both stages (or continue a saved state with ``resume``). ``max_steps`` stops after that many
        optimizer steps in this call, saving the state (an interruption on purpose, for tests and time limits)."""
        if resume and self.has_state():
            self.load_state()
        else:
            self._new_optimizer()
        t0 = time.perf_counter()
        done_here = 0
        finished = True
        while self.stage_index < len(STAGES):
            stage = STAGES[self.stage_index]
            settings = self._stage_settings(stage)
            module = self._trained_module(stage)
            module.train().requires_grad_(True)
            other = self.model if stage == "tokenizer" else self.tokenizer
            other.eval().requires_grad_(False)
            lr = lr_at(settings, self.step) if settings.steps else 0.0
            while self.step < settings.steps:
                if max_steps is not None and done_here >= max_steps:
                    finished = False
                    break
                loss, parts, lr = self._one_step(stage, settings)
                self.step += 1
                done_here += 1
                self.acc["n"] += 1
                self.acc["loss"] += loss
                for k, v in parts.items():
                    self.acc["parts"][k] = self.acc["parts"].get(k, 0.0) + v
                elapsed = self.elapsed_prev + time.perf_counter() - t0
                if self.step % self.spec.log_every == 0 or self.step == settings.steps:
                    self._log(stage, settings, lr, elapsed)
                if self.step % self.spec.save_every == 0 and self.step < settings.steps:
                    self.save_state(elapsed)
            if not finished:
                break
            module.eval().requires_grad_(False)
            self.stage_index += 1
            self.step = 0
            self.acc = {"n": 0, "loss": 0.0, "parts": {}}
            self._new_optimizer()
            self.save_state(self.elapsed_prev + time.perf_counter() - t0)
        elapsed = self.elapsed_prev + time.perf_counter() - t0
        if not finished:
            self.save_state(elapsed)
        self.model.eval().requires_grad_(False)
        self.tokenizer.eval().requires_grad_(False)
        return TrainResult(self.model, self.tokenizer, list(self.history), finished, elapsed, self.resumed_from)


def weights_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def max_abs_diff(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].float().cpu() - sb[k].float().cpu()).abs().max()) for k in sa if sa[k].numel())


def param_count(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


__all__ = [
    "ProgressCallback",
    "ResumeError",
    "TrainEvent",
    "TrainResult",
    "TrainSpec",
    "Trainer",
    "build_scratch",
    "init_weights",
    "lr_at",
    "make_optimizer",
    "max_abs_diff",
    "param_count",
    "weights_equal",
]
