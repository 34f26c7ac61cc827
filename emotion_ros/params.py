"""Declared parameters: dataclass fields that carry their description, range and allowed values.

Every setting a user can change (a ROS parameter of the node, a key of launch/perceive.yaml, an option of
the offline runner) is a field of one of the configuration dataclasses, declared with ``param(...)``:
its default lives there and nowhere else, and its description is what ``ros2 param describe`` shows.
``build(cls, values)`` turns plain values (YAML, ROS parameters, CLI overrides) into an instance, with
one rule for every field:

- a ``Literal[...]`` field accepts only its listed values (e.g. ``asr: Literal["auto", "always", "never"]``:
  ``"off"`` is an error naming the allowed values, not a silently accepted string);
- an integer given for a float field is converted (YAML ``window_s: 3``); a float for an int field only
  when it is whole; ``bool`` is never taken as a number;
- ``min`` / ``max`` bound numbers (``queue_size: 0`` is an error, not a node that never works);
- a tuple-of-strings field takes a list (``labels: [happy, sad]``); empty strings in it are dropped.
Errors are ``ConfigError`` with one sentence naming the parameter.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal


class ConfigError(ValueError):
    """A parameter value that cannot be used; the message names the parameter and what is allowed."""


def param(default, doc: str, *, min: float | None = None, max: float | None = None, advanced: bool = False,
          name: str | None = None):
    """A dataclass field with its description (and optional numeric bounds). ``advanced`` marks fields that
    launch/perceive.yaml does not need to show (they are still declared ROS parameters). ``name``: the
    parameter's name where it differs from the field's (``WindowingConfig.mode`` is ``window_mode``)."""
    kwargs = {"default_factory": lambda: default} if isinstance(default, (list, dict, set)) else {"default": default}
    return dataclasses.field(metadata={"doc": doc, "min": min, "max": max, "advanced": advanced, "name": name},
                             **kwargs)


@dataclass(frozen=True)
class ParamSpec:
    """What one declared field is: name, default, kind (bool | int | float | str | str_list), description,
    bounds and allowed values."""

    name: str
    default: Any
    kind: str
    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    advanced: bool = False
    field: str = ""  # the dataclass field behind the parameter (= name unless param(name=...))

    def describe(self) -> str:
        """The description with the allowed values / bounds appended (for ros2 param describe and --help)."""
        text = self.doc
        if self.choices:
            text += f" (one of: {', '.join(map(str, self.choices))})"
        elif self.min is not None or self.max is not None:
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            text += f" (range {lo} .. {hi})"
        return text


def specs(cls) -> list[ParamSpec]:
    """The ParamSpec of every ``param(...)`` field of dataclass ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "doc" not in f.metadata:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind, choices = _kind(hints[f.name])
        out.append(ParamSpec(f.metadata["name"] or f.name, default, kind, f.metadata["doc"], f.metadata["min"],
                             f.metadata["max"], choices, f.metadata["advanced"], f.name))
    return out


def _kind(hint) -> tuple[str, tuple | None]:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        return type(choices[0]).__name__, tuple(choices)
    if origin is tuple:
        return "str_list", None
    if hint in (bool, int, float, str):
        return hint.__name__, None
    raise TypeError(f"unsupported parameter type {hint!r}")


def coerce(spec: ParamSpec, value):
    """``value`` as the field's type, or ConfigError (see the module docstring for the rules)."""
    def bad(why: str):
        return ConfigError(f"parameter {spec.name}: {why} (got {value!r}); {spec.describe()}")

    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("expected true or false")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("expected an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise bad("expected a whole number")
            value = int(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("expected a number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("expected a finite number")
    elif kind == "str":
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise bad("expected a string")
    elif kind == "str_list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise bad("expected a list of strings")
        value = tuple(v for v in value if v)
    if spec.choices is not None and value not in spec.choices:
        raise bad("not an allowed value")
    if spec.min is not None and value < spec.min:
        raise bad(f"must be >= {spec.min:g}")
    if spec.max is not None and value > spec.max:
        raise bad(f"must be <= {spec.max:g}")
    return value


def validate(instance) -> None:
    """Check (and normalise in place: int -> float, list -> tuple) every param() field of a dataclass
    instance; for __post_init__, so direct construction (``EngineConfig(asr="never")``) is checked too."""
    for spec in specs(type(instance)):
        object.__setattr__(instance, spec.field, coerce(spec, getattr(instance, spec.field)))


def build(cls, values: dict[str, Any]):
    """An instance of dataclass ``cls`` from ``values`` (declared fields only; missing ones keep their
    defaults). Unknown keys raise ConfigError naming the closest declared parameter."""
    table = {s.name: s for s in specs(cls)}
    unknown = [k for k in values if k not in table]
    if unknown:
        raise ConfigError(unknown_message(unknown, table))
    kwargs = {table[k].field: coerce(table[k], v) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:  # the dataclass's own cross-field checks (__post_init__)
        raise ConfigError(str(exc)) from None


def unknown_message(unknown, known) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(known), n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return "unknown parameter(s): " + ", ".join(parts)
