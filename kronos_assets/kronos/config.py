"""Configs of the tokenizer and the predictor, their config.json format, and the released checkpoints.

config.json holds the constructor arguments, written like the hub mixin writes them (sorted keys, 2-space
indent, no trailing newline) so that a config we save hashes exactly like the published one.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from .errors import CheckpointError

Kind = Literal["tokenizer", "model"]
ContextPolicy = Literal["exact", "trim"]
Mode = Literal["fast", "reference"]
CONTEXT_POLICIES: tuple[str, ...] = ("exact", "trim")
DEFAULT_CONTEXT_POLICY: ContextPolicy = "exact"  # the model's own sliding window; "trim" only when asked for
MODES: tuple[str, ...] = ("fast", "reference")


# Sane bounds of the size fields (well above Kronos-large), checked before any module is built: a config.json
# with n_layers 1000000 would otherwise build for minutes and many GB.
SIZE_BOUNDS: dict[str, tuple[int, int]] = {
    "d_in": (6, 6),
    "d_model": (2, 8192),
    "n_heads": (1, 256),
    "ff_dim": (1, 65536),
    "n_layers": (1, 128),
    "n_enc_layers": (2, 64),
    "n_dec_layers": (2, 64),
    "s1_bits": (1, 16),
    "s2_bits": (1, 16),
    "group_size": (1, 20),
}


def Size(name: str) -> Any:  # noqa: N802 (a type, used like one)
    """A whole number within the field's SIZE_BOUNDS (a flag or 32.5 is refused)."""
    lo, hi = SIZE_BOUNDS[name]

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"= {value} is outside the sane range {lo}..{hi}")
        return value

    return Annotated[int, BeforeValidator(check)]


def _rate(below_one: bool) -> Any:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite number >= 0, got {value!r}")
        if below_one and value >= 1:
            raise ValueError(f"= {value} must be below 1")
        return value  # as written: 0 stays 0, so a saved config.json hashes like the published one

    return Annotated[float, BeforeValidator(check)]


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


Dropout, Weight, Flag = _rate(True), _rate(False), Annotated[bool, BeforeValidator(_flag)]


@dataclass(frozen=True)
class TokenizerConfig:
    d_in: Size("d_in") = 6  # type: ignore[valid-type]
    d_model: Size("d_model") = 256  # type: ignore[valid-type]
    n_heads: Size("n_heads") = 4  # type: ignore[valid-type]
    ff_dim: Size("ff_dim") = 512  # type: ignore[valid-type]
    n_enc_layers: Size("n_enc_layers") = 4  # type: ignore[valid-type]
    n_dec_layers: Size("n_dec_layers") = 4  # type: ignore[valid-type]
    ffn_dropout_p: Dropout = 0.0
    attn_dropout_p: Dropout = 0.0
    resid_dropout_p: Dropout = 0.0
    s1_bits: Size("s1_bits") = 10  # type: ignore[valid-type]
    s2_bits: Size("s2_bits") = 10  # type: ignore[valid-type]
    beta: Weight = 0.05
    gamma0: Weight = 1.0
    gamma: Weight = 1.1
    zeta: Weight = 0.05
    group_size: Size("group_size") = 4  # type: ignore[valid-type]

    kind = "tokenizer"
    __pydantic_config__ = ConfigDict(extra="forbid")  # read by config_from_dict (a config.json's object)

    def __post_init__(self) -> None:
        _check_heads(self.d_model, self.n_heads, "tokenizer")
        if self.s1_bits != self.s2_bits:
            # The official decode masks both halves with codebook_dim // 2 bits; unequal halves never worked.
            raise CheckpointError(f"tokenizer config: s1_bits ({self.s1_bits}) must equal s2_bits ({self.s2_bits})")
        if self.n_enc_layers < 1 or self.n_dec_layers < 1:
            raise CheckpointError("tokenizer config: n_enc_layers and n_dec_layers must be >= 1")

    @property
    def codebook_dim(self) -> int:
        return self.s1_bits + self.s2_bits

    @property
    def n_encoder_blocks(self) -> int:
        return self.n_enc_layers - 1  # the official off-by-one: n_enc_layers=4 builds 3 blocks

    @property
    def n_decoder_blocks(self) -> int:
        return self.n_dec_layers - 1

    def to_json(self) -> str:
        return _dump(self)


@dataclass(frozen=True)
class KronosConfig:
    d_model: Size("d_model") = 256  # type: ignore[valid-type]
    n_layers: Size("n_layers") = 4  # type: ignore[valid-type]
    n_heads: Size("n_heads") = 4  # type: ignore[valid-type]
    ff_dim: Size("ff_dim") = 512  # type: ignore[valid-type]
    s1_bits: Size("s1_bits") = 10  # type: ignore[valid-type]
    s2_bits: Size("s2_bits") = 10  # type: ignore[valid-type]
    ffn_dropout_p: Dropout = 0.0
    attn_dropout_p: Dropout = 0.0
    resid_dropout_p: Dropout = 0.0
    token_dropout_p: Dropout = 0.0
    learn_te: Flag = True

    kind = "model"
    __pydantic_config__ = ConfigDict(extra="forbid")

    def __post_init__(self) -> None:
        _check_heads(self.d_model, self.n_heads, "model")
        if self.d_model % (2 * DEP_HEADS):
            raise CheckpointError(f"model config: d_model {self.d_model} must split into {DEP_HEADS} even heads")
        if not self.learn_te:
            # Fixed sinusoid time tables exist in the original code but no released checkpoint uses them.
            raise CheckpointError("model config: learn_te=false (fixed time embeddings) is not supported")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_json(self) -> str:
        return _dump(self)


# The dependency layer's head count is hard-coded in the original, whatever n_heads says.
DEP_HEADS = 4
AnyConfig = TokenizerConfig | KronosConfig


def _check_heads(d_model: int, n_heads: int, what: str) -> None:
    if n_heads < 1 or d_model % n_heads or (d_model // n_heads) % 2:
        raise CheckpointError(f"{what} config: d_model {d_model} must split into {n_heads} heads of even size")


def _dump(cfg: AnyConfig) -> str:
    return json.dumps(asdict(cfg), sort_keys=True, indent=2)


def config_from_dict(data: Mapping[str, Any], expected: Kind | None = None, source: str = "config.json") -> AnyConfig:
    """Build the right config from a config.json dict; raises CheckpointError naming ``source`` and the
    missing, unknown, mistyped or out-of-range field."""
    kind: Kind = "tokenizer" if "n_enc_layers" in data or "d_in" in data else "model"
    if expected is not None and kind != expected:
        raise CheckpointError(f"{source} describes a {kind}, but a {expected} was expected")
    cls = TokenizerConfig if kind == "tokenizer" else KronosConfig
    return validate_config(cls, data, f"{source} ({kind})", complete=True)


@functools.cache
def _adapter(cls: type[AnyConfig]) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def validate_config(cls: type[AnyConfig], data: Mapping[str, Any], where: str, complete: bool = False) -> AnyConfig:
    """``cls`` from ``data``, every field's type and bounds checked (its pydantic schema) before any module is
    built; ``complete``: every field must be given (a config.json holds them all). Errors name ``where`` and the
    field."""
    names = {f.name for f in fields(cls)}
    missing = sorted(names - set(data)) if complete else []
    unknown = sorted(set(data) - names)
    if missing or unknown:
        raise CheckpointError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    try:
        return _adapter(cls).validate_python(dict(data))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        message = err["msg"].removeprefix("Value error, ")
        raise CheckpointError(
            f"{where}: field {err['loc'][0]!r} {message}" if err["loc"] else f"{where}: {message}"
        ) from None


def config_from_json(text: str | bytes, expected: Kind | None = None, source: str = "config.json") -> AnyConfig:
    """A config from config.json's text or bytes; anything unreadable is a CheckpointError naming ``source``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{source} is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{source} is not valid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except RecursionError:  # e.g. 100,000 nested brackets: the parser's stack, not a config
        raise CheckpointError(f"{source} is not a checkpoint config: nested too deep to read") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{source} must hold a JSON object")
    return config_from_dict(data, expected, source)


def _header_sizes(c: AnyConfig) -> list[tuple[str, str, int, int]]:
    """(field, tensor key, dim, size the config implies) for the sizes a config fixes."""
    if isinstance(c, KronosConfig):
        return [
            ("d_model", "norm.weight", 0, c.d_model),
            ("ff_dim", "transformer.0.ffn.w1.weight", 0, c.ff_dim),
            ("s1_bits", "embedding.emb_s1.weight", 0, 2**c.s1_bits),
            ("s2_bits", "embedding.emb_s2.weight", 0, 2**c.s2_bits),
        ]
    return [
        ("d_model", "embed.weight", 0, c.d_model),
        ("d_in", "embed.weight", 1, c.d_in),
        ("ff_dim", "encoder.0.ffn.w1.weight", 0, c.ff_dim),
        ("s1_bits + s2_bits", "quant_embed.weight", 0, c.s1_bits + c.s2_bits),
        ("group_size", "tokenizer.bsq.group_basis", 0, c.group_size),
    ]


def _block_counts(c: AnyConfig) -> list[tuple[str, str, int]]:
    """(field, key prefix, blocks the config implies): n_*_layers - 1 blocks in the tokenizer (spec §4.1)."""
    if isinstance(c, KronosConfig):
        return [("n_layers", "transformer.", c.n_layers)]
    return [("n_enc_layers", "encoder.", c.n_encoder_blocks), ("n_dec_layers", "decoder.", c.n_decoder_blocks)]


def header_mismatches(config: AnyConfig, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """What ``config`` says against the tensor shapes of a weight file's header, one line per field."""
    out = []
    for name, prefix, want in _block_counts(config):
        found = {k[len(prefix) :].split(".", 1)[0] for k in shapes if k.startswith(prefix)}
        n = sum(1 for i in found if i.isdigit())
        if n != want:
            out.append(
                f"{name} = {getattr(config, name)} implies {want} {prefix.rstrip('.')} blocks, the file holds {n}"
            )
    for name, key, dim, want in _header_sizes(config):
        shape = shapes.get(key)
        if shape is not None and (len(shape) <= dim or shape[dim] != want):
            out.append(f"{name} implies size {want} for {key}, the file has shape {list(shape)}")
    return out


@dataclass(frozen=True)
class NamedCheckpoint:
    """A checkpoint shipped with the package, selectable by a short name (``kronos-forecast --model demo``)."""

    model: Path
    tokenizer: Path
    max_context: int
    about: str


_SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
NAMED_CHECKPOINTS: dict[str, NamedCheckpoint] = {
    "demo": NamedCheckpoint(
        _SHIPPED / "real-1h" / "model",
        _SHIPPED / "real-1h" / "tokenizer",
        504,
        "tiny Kronos trained on real Binance 1h candles of BTC, ETH, BNB, SOL and XRP before "
        "2024-07-01 (the demo profile's model); works offline, not for trading",
    ),
    "synthetic": NamedCheckpoint(
        _SHIPPED / "demo" / "model",
        _SHIPPED / "demo" / "tokenizer",
        504,
        "tiny Kronos trained on the synthetic market only (the synthetic profile's)",
    ),
}


# The five released configs (spec §2).
TOKENIZER_BASE = TokenizerConfig(group_size=4)
TOKENIZER_2K = TokenizerConfig(group_size=5)
KRONOS_MINI = KronosConfig(
    d_model=256,
    n_layers=4,
    n_heads=4,
    ff_dim=512,
    ffn_dropout_p=0.2,
    attn_dropout_p=0.0,
    resid_dropout_p=0.2,
    token_dropout_p=0.0,
)
KRONOS_SMALL = KronosConfig(
    d_model=512,
    n_layers=8,
    n_heads=8,
    ff_dim=1024,
    ffn_dropout_p=0.25,
    attn_dropout_p=0.1,
    resid_dropout_p=0.25,
    token_dropout_p=0.1,
)
KRONOS_BASE = KronosConfig(
    d_model=832,
    n_layers=12,
    n_heads=16,
    ff_dim=2048,
    ffn_dropout_p=0.2,
    attn_dropout_p=0.0,
    resid_dropout_p=0.2,
    token_dropout_p=0.0,
)


@dataclass(frozen=True)
class OfficialFile:
    size: int
    sha256: str


@dataclass(frozen=True)
class OfficialCheckpoint:
    repo_id: str
    revision: str
    config: AnyConfig
    files: Mapping[str, OfficialFile]
    tokenizer_repo: str | None = None  # the tokenizer a predictor was released with
    context_length: int | None = None  # README "context length" (= max_context the authors use)


OFFICIAL: dict[str, OfficialCheckpoint] = {
    c.repo_id: c
    for c in (
        OfficialCheckpoint(
            "NeoQuasar/Kronos-mini",
            "f4e68697d9d5aed55cef5c96aabc3376bcad9f81",
            KRONOS_MINI,
            {
                "model.safetensors": OfficialFile(
                    16_440_776, "a7d5f37e2e9fbd9891f7d7d4f72574512dd1f704fee14223e0a8cd0fbf54197c"
                ),
                "config.json": OfficialFile(225, "70daca2cb11e3a979dd6b8ac12ee08e2aace877acf28f5b8dfb4fe5609736201"),
            },
            tokenizer_repo="NeoQuasar/Kronos-Tokenizer-2k",
            context_length=2048,
        ),
        OfficialCheckpoint(
            "NeoQuasar/Kronos-small",
            "901c26c1332695a2a8f243eb2f37243a37bea320",
            KRONOS_SMALL,
            {
                "model.safetensors": OfficialFile(
                    98_980_656, "b082dfcbd8e8c142a725c8bbb99781802f38fec81210e13479effb32b3c3e020"
                ),
                "config.json": OfficialFile(228, "5e0f6a605d5f81b5c9b559fe5cf716a1acb041c744e6f41bd05b097b7a685396"),
            },
            tokenizer_repo="NeoQuasar/Kronos-Tokenizer-base",
            context_length=512,
        ),
        OfficialCheckpoint(
            "NeoQuasar/Kronos-base",
            "2b554741eca47781b64468546e77fef3e85130e6",
            KRONOS_BASE,
            {
                "model.safetensors": OfficialFile(
                    409_264_008, "abff193acab6db1a0368e9773e75799d11403b6d054ee6d5f0a11aeabc5f4b83"
                ),
                "config.json": OfficialFile(228, "77ebc3038b647709b92be002f801d72e1a385f4c8c2c5aa1cc6cf21fcfe44eb2"),
            },
            tokenizer_repo="NeoQuasar/Kronos-Tokenizer-base",
            context_length=512,
        ),
        OfficialCheckpoint(
            "NeoQuasar/Kronos-Tokenizer-2k",
            "26966d0035065a0cae0ebad7af8ece35bc1fb51c",
            TOKENIZER_2K,
            {
                "model.safetensors": OfficialFile(
                    15_842_376, "b97ec46b3b72160509e289183eaf7bdf5f0dac5bb9b49522f6d46638a99a8717"
                ),
                "config.json": OfficialFile(301, "0b30a443affb03e05a876a083857de9164f899feb7b4d261da02c485c9a3e3b6"),
            },
        ),
        OfficialCheckpoint(
            "NeoQuasar/Kronos-Tokenizer-base",
            "0e0117387f39004a9016484a186a908917e22426",
            TOKENIZER_BASE,
            {
                "model.safetensors": OfficialFile(
                    15_842_368, "59d85f6af76a2c3b8240ea06cb21db4213b4eeca053f246b23e29cf832fc6bee"
                ),
                "config.json": OfficialFile(301, "2366e7ccfec76cbc19cf3c4c1b9c5d901be336ca1e83f2d2292c9bff381b77a2"),
            },
        ),
    )
}

DEFAULT_MODEL_REPO = "NeoQuasar/Kronos-mini"  # the live demo's model (with Tokenizer-2k)
