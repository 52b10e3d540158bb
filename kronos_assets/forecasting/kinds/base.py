"""What a model kind is: how its models.yaml options are read, how it loads, and what it has to fetch or watch.

A kind never imports the configuration module: settings.py hands it an ``Options`` over one models.yaml entry,
and every key the kind reads counts as known, so a key no kind reads is still an error naming the nearest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from kronos_assets.forecasting.interface import Forecaster

_REQUIRED = object()


class FieldErrors(Protocol):
    """settings._Reader's part a kind uses: typed reads with 'missing'/'expected' errors, and '<file>: <field>'."""

    def get(self, mapping: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any: ...

    def fail(self, fieldname: str, problem: str) -> ValueError: ...


@dataclass(frozen=True)
class Options:
    """One models.yaml entry as its kind reads it; errors name the file and ``models.<key>.<field>``."""

    reader: FieldErrors
    mapping: dict[str, Any]
    key: str  # the entry's name, which names its forecaster
    root: Path  # relative paths in the entry are relative to the repository
    where: str | None = None  # field prefix in errors; models.<key>. unless given

    def __post_init__(self) -> None:
        if self.where is None:
            object.__setattr__(self, "where", f"models.{self.key}.")

    def has(self, name: str) -> bool:
        return name in self.mapping

    def fail(self, name: str, problem: str) -> ValueError:
        return self.reader.fail(f"{self.where}{name}", problem)

    def text(self, name: str, default: Any = _REQUIRED) -> Any:
        if default is not _REQUIRED and name not in self.mapping:
            return default
        return self.reader.get(self.mapping, name, self.where, str)

    def whole(self, name: str, minimum: int, default: Any = _REQUIRED) -> int:
        """A whole number >= minimum; 2.5, true or a number below the minimum are errors saying what is expected."""
        if name not in self.mapping:
            if default is not _REQUIRED:
                return default
            self.reader.get(self.mapping, name, self.where, int)  # raises 'missing' with its hint
        value = self.mapping[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(name, f"must be a whole number >= {minimum}, got {value!r}")
        return value


@dataclass(frozen=True)
class ModelSpec:
    """A forecaster a profile can name: its key, its kind and the options that kind parsed."""

    key: str
    kind: str
    options: Any


@dataclass(frozen=True)
class Kind:
    """A model kind. ``weights`` and ``revisions`` are None for kinds with nothing to fetch or watch: the weights
    asset, the revision sensor and health's model checks then leave its models alone."""

    name: str
    parse: Callable[[Options], Any]  # models.yaml options -> the kind's frozen options (raises naming the field)
    build: Callable[[str, Any], Forecaster]  # (key, options) -> a loaded forecaster named key
    describe: Callable[[Any], str]  # where the model comes from, one line (health, asset descriptions)
    weights: Callable[[Any], dict[str, Any]] | None = None  # fetch + verify; part -> kronos.hub.CheckpointInfo
    revisions: Callable[[Any], dict[str, tuple[str, str]]] | None = None  # part -> (hub repo, pinned revision)
    repin: Callable[[Any, dict[str, str]], Any] | None = None  # options at other revisions (part -> revision)
