"""What every configuration file is read with: pydantic v2 models (``Schema``: unknown keys forbidden, frozen,
whole numbers and flags strict), a YAML loader that refuses a key written twice, and ``ConfigError``, whose
message is ``<file>: <field path>: <problem>`` with the nearest valid key for a misspelt one.

A leaf: no Dagster, nothing of the package, so settings, training and the model kinds share one set of rules.
"""

from __future__ import annotations

import difflib
import math
import types
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Iterable, Mapping, Sequence, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

DEVICE_HELP = "use auto, cpu, cuda, cuda:N or mps"


class ConfigError(ValueError):
    """Configuration problems, one line each (``lines``), every line naming the file and the field."""

    def __init__(self, *lines: str) -> None:
        self.lines = tuple(line for text in lines for line in str(text).splitlines() if line.strip())
        super().__init__("\n".join(self.lines))


class Problems:
    """Every problem of one file, gathered so that a user fixes them in one go, not one per attempt."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, where: Sequence[Any], message: str) -> None:
        self.lines.append(str(fail(self.path, where, message)))

    def add_error(self, exc: ConfigError) -> None:
        self.lines.extend(line for line in exc.lines if line not in self.lines)

    def check(self) -> None:
        """Raises the ConfigError of every problem gathered, if any."""
        if self.lines:
            raise ConfigError(*self.lines)


class Schema(BaseModel):
    """A mapping of a configuration file: every key known, nothing changed after reading."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True)


def problem(message: str, at: tuple[Any, ...] = ()) -> PydanticCustomError:
    """A validation failure whose message is ours, about the value validated or, ``at`` given, about the field at
    that path below it (a model's check naming one of its fields); ``config_error`` adds the field path."""
    return PydanticCustomError("config", message, {"at": at} if at else None)


def _whole(minimum: int, maximum: int | None = None) -> Any:
    def check(value: Any) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
            raise problem(f"must be a whole number {bound}, got {value!r}")
        return value

    return Annotated[int, BeforeValidator(check)]


def Whole(minimum: int, maximum: int | None = None) -> Any:  # noqa: N802 (a type, used like one)
    """A whole number >= minimum (<= maximum): 2.5, 1e3, true or -1 are errors saying what is expected."""
    return _whole(minimum, maximum)


def Number(low: float = 0.0, *, low_open: bool = True, high: float | None = None) -> Any:  # noqa: N802
    """A finite number above ``low`` (or at it when not ``low_open``), at most ``high``; never a flag."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise problem(f"expected a number, got {type(value).__name__} {value!r}")
        if (
            not math.isfinite(value)
            or (value <= low if low_open else value < low)
            or (high is not None and value > high)
        ):
            bound = (f"> {low:g}" if low_open else f">= {low:g}") + ("" if high is None else f" and <= {high:g}")
            raise problem(f"must be a {'' if math.isfinite(value) else 'finite '}number {bound}, got {value!r}")
        return float(value)

    return Annotated[float, BeforeValidator(check)]


def OneOf(choices: Sequence[str], what: str) -> Any:  # noqa: N802 (a type, used like one)
    """One of ``choices``; anything else is 'unknown <what> X; choose one of ...'."""

    def check(value: Any) -> str:
        if value not in choices:
            raise problem(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
        return value

    return Annotated[str, BeforeValidator(check)]


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise problem(f"not a date (YYYY-MM-DD): {value!r}")


def _moment(value: Any) -> datetime:
    """A UTC datetime from a YAML date, datetime or ISO text (naive means UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise problem(f"not a date or datetime (YYYY-MM-DD[THH:MM]): {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


Day = Annotated[date, BeforeValidator(_day)]
Moment = Annotated[datetime, BeforeValidator(_moment)]


def device_name(value: Any) -> str:
    """The one device rule (models.yaml and training.yaml): auto, cpu, mps, cuda or cuda:N."""
    if isinstance(value, str) and (
        value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit())
    ):
        return value
    raise problem(f"unknown device {value!r}; {DEVICE_HELP}")


Device = Annotated[str, BeforeValidator(device_name)]


def no_repeats(items: Sequence[Any], what: str) -> Sequence[Any]:
    """A list naming each item once; the error names the index of the second mention."""
    seen: set[Any] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise problem(f"lists {what} {item!r} twice", at=(i,))
        seen.add(item)
    return items


# -- reading a file --------------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe YAML where a key written twice is an error, not 'last wins'; every one is noted (``repeats``) and
    reported with the file's other problems."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeats: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                self.repeats.append(
                    f"key {key!r} written twice (lines {seen[key].line + 1} and {key_node.start_mark.line + 1})"
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=True)


_Loader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node))


class YamlMapping(dict):  # type: ignore[type-arg]
    """A file's top-level mapping, with the keys written twice in it (``validate`` reports them with the rest)."""

    repeats: tuple[str, ...] = ()


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; a missing file or bad YAML is a ConfigError, keys written twice are
    kept on the mapping (``YamlMapping.repeats``) for ``validate`` to report beside the schema's problems."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        loader = _Loader(path.read_text())
        try:
            data = loader.get_single_data() or {}
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except (RecursionError, UnicodeDecodeError, OSError) as exc:  # nested too deep, not text, unreadable
        raise ConfigError(f"{path}: not readable as YAML: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    out = YamlMapping(data)
    out.repeats = tuple(f"{path}: {r}" for r in loader.repeats)
    return out


def validate(
    schema: type[BaseModel], data: Any, path: Path, prefix: tuple[Any, ...] = (), context: dict[str, Any] | None = None
) -> Any:
    """``schema`` validated from ``data`` (read from ``path``, found at ``prefix`` in it); its problems, every one
    of them with the keys written twice, are one ConfigError, a line each naming the file and the field."""
    repeats = getattr(data, "repeats", ())
    try:
        out = schema.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(*repeats, *config_error(path, exc, schema, data, prefix).lines) from None
    if repeats:
        raise ConfigError(*repeats)
    return out


def fail(path: Path, where: Sequence[Any], message: str) -> ConfigError:
    return ConfigError(f"{path}: {field_path(where)}: {message}")


def field_path(loc: Sequence[Any]) -> str:
    """('timeframes', '1h', 'horizon') -> timeframes.1h.horizon; ('symbols', 1) -> symbols[1]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def config_error(
    path: Path, exc: ValidationError, schema: type[BaseModel], data: Any, prefix: tuple[Any, ...] = ()
) -> ConfigError:
    """Every problem pydantic found, a line each; a misspelt key is one line (its unknown key with the nearest
    name), not also a 'missing' line for the key it meant."""
    errors = exc.errors(include_url=False)
    meant = set()  # (parent location, key) that an unknown key's nearest name says was meant
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = tuple(p for p in err["loc"] if p != "[key]")
            near = difflib.get_close_matches(str(loc[-1]), sorted(_fields_at(schema, loc[:-1])), n=1, cutoff=0.6)
            meant.update((loc[:-1], n) for n in near)
    lines = []
    for err in errors:
        loc = tuple(p for p in err["loc"] if p != "[key]")
        if err["type"] == "missing" and (loc[:-1], loc[-1]) in meant:
            continue
        line = str(_one_error(path, err, schema, data, prefix))
        if line not in lines:
            lines.append(line)
    return ConfigError(*lines)


def _one_error(path: Path, err: Any, schema: type[BaseModel], data: Any, prefix: tuple[Any, ...]) -> ConfigError:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    value = err.get("input")
    kind = err["type"]
    if kind == "missing":
        message = "missing" + _misspelt(loc, schema, data)
    elif kind == "extra_forbidden":
        message = unknown_key(loc[-1], _fields_at(schema, loc[:-1]))
    elif kind == "config":
        message = err["msg"]
        loc = (*loc, *(err.get("ctx") or {}).get("at", ()))
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {type(value).__name__} {value!r}"
    elif kind == "value_error":  # a model's own check (raise ValueError in a validator)
        message = err["msg"].removeprefix("Value error, ")
    else:  # pydantic's constraints (Field(ge=...), Literal, ...): its words, and the value
        message = f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {value!r}"
    return fail(path, (*prefix, *loc), message)


def unknown_key(key: Any, known: Iterable[str]) -> str:
    """'unknown key; did you mean <nearest>?', or the valid keys when none is near."""
    known = sorted(known)
    near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return f"unknown key; did you mean {near[0]!r}?" if near else f"unknown key; valid here: {', '.join(known)}"


_EXPECTED = {
    "string_type": "text",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "int_type": "a whole number",
    "float_type": "a number",
}


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _fields_at(schema: Any, loc: Sequence[Any]) -> set[str]:
    """The keys the schema knows at ``loc`` (through nested models, mappings and lists)."""
    tp: Any = schema
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return set()
            tp = tp.model_fields[part].annotation
        elif get_origin(tp) in (dict, Mapping) and get_args(tp):
            tp = get_args(tp)[1]
        elif get_origin(tp) in (list, tuple) and get_args(tp):
            tp = get_args(tp)[0]
        else:
            return set()
    tp = _unwrap(tp)
    return set(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else set()


def _misspelt(loc: Sequence[Any], schema: Any, data: Any) -> str:
    """' (is 'horizn' a misspelling of it?)' when a key the schema does not know sits where one is missing."""
    node = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return ""
    if not isinstance(node, dict):
        return ""
    stray = [str(k) for k in node if k not in _fields_at(schema, loc[:-1])]
    near = difflib.get_close_matches(str(loc[-1]), stray, n=1, cutoff=0.6)
    return f" (is {near[0]!r} a misspelling of it?)" if near else ""
