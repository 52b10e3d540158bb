"""What a model kind is: the schema of its models.yaml options, how it loads, and what it has to fetch or watch.

A kind never imports the settings module, nor settings a kind: each kind module registers its Kind here when it
is imported (``register``), and settings.py validates one models.yaml entry against the schema of the kind it
names (a pydantic model: unknown keys, wrong types and out-of-range values are errors naming
``models.<key>.<field>`` and the nearest valid key), keeping the validated options (of the kind's ``options`` type).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import BaseModel

from kronos_assets.forecasting.interface import Forecaster


@dataclass(frozen=True)
class ModelSpec:
    """A forecaster a profile can name: its key, its kind and the options that kind parsed."""

    key: str
    kind: str
    options: Any


def _as_is(key: str, options: Any) -> Any:
    return options


@dataclass(frozen=True)
class Kind:
    """A model kind. ``weights`` and ``revisions`` are None for kinds with nothing to fetch or watch: the weights
    asset, the revision sensor and health's model checks then leave its models alone."""

    name: str
    schema: Callable[[Mapping[str, Any]], type[BaseModel]]  # a models.yaml entry (less kind:) -> its schema
    build: Callable[[str, Any], Forecaster]  # (key, options) -> a loaded forecaster named key
    describe: Callable[[Any], str]  # where the model comes from, one line (health, asset descriptions)
    weights: Callable[[Any], dict[str, Any]] | None = None  # fetch + verify; part -> kronos.hub.CheckpointInfo
    revisions: Callable[[Any], dict[str, tuple[str, str]]] | None = None  # part -> (hub repo, pinned revision)
    repin: Callable[[Any, dict[str, str]], Any] | None = None  # options at other revisions (part -> revision)
    settle: Callable[[str, Any], Any] = _as_is  # (key, validated schema) -> the options build/describe take
    options: type = object  # the type of what parse returns (what settings hold for each forecaster of the kind)

    def parse(self, key: str, entry: Mapping[str, Any], root: Path) -> Any:
        """The entry's options; raises pydantic's ValidationError (relative paths resolve against ``root``)."""
        options = self.settle(key, self.schema(entry).model_validate(dict(entry), context={"root": root}))
        if not isinstance(options, self.options):  # a kind's own bug, not the user's config
            raise TypeError(
                f"kind {self.name!r} parsed {key!r} to a {type(options).__name__}, not its "
                f"options type {self.options.__name__}"
            )
        return options


# The registry: every kind module fills it on import (forecasting/kinds/__init__.py imports the built-in ones).
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Adds a kind to the registry under its name (one module per kind; a second kind of the same name is a bug)."""
    if KINDS.get(kind.name, kind) is not kind:
        raise ValueError(f"model kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind
