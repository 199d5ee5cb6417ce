"""Options of a pipeline: one frozen, validated dataclass, the single definition of each option.

A pipeline's options class (`ZeroShotOptions`, `RigidOptions`, `ModalityOptions`) declares
every user choice once with `option(...)`: default, help text, allowed choices or range.
Everything else is derived from that declaration:
- the command line (`add_arguments` / `from_namespace`): `--name-with-dashes`, booleans as
  `--x/--no-x`, help with the default and the range;
- the Slicer parameter node (`from_attributes` reads the camelCase fields of the same name,
  `parameter_name`), whose declaration a test compares with the options class;
- a batch manifest row (`from_strings`: the CSV's text values parsed by each field's type);
- keyword use from Python (`resolve(options, **changes)`).
The values are checked once, when the object is made, and a bad value raises `OptionsError`
naming the option and what it accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import typing
from typing import Any, Mapping, Sequence, TypeVar

from dlreg.errors import DLRegError


class OptionsError(DLRegError, ValueError):
    """An option has a value it does not accept."""


def option(default: Any, help: str, *, choices: Sequence[str] | None = None,
           minimum: float | None = None, maximum: float | None = None, metavar: str | None = None,
           path: bool = False, pattern: str | None = None, deprecated: Mapping[str, str] | None = None) -> Any:
    """A dataclass field with its user-facing description.

    `pattern` is a regular expression a text option must match in full. `path` marks a file or
    folder option (None: the bundled default; an empty path or "." from a GUI path field means
    None). `deprecated` maps an old command-line spelling to the release that drops it; the old
    spelling keeps working and prints a deprecation message.
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "minimum": minimum,
            "maximum": maximum, "metavar": metavar, "path": path, "pattern": pattern,
            "deprecated": dict(deprecated or {})}
    return dataclasses.field(default=default, metadata=meta)


# Seeds are bounded by what a Qt spin box (the Slicer parameter node's widget) can hold.
SEED_MAX = 2 ** 31 - 1


def seed_option() -> Any:
    """The seed of every random choice (the same seed gives the same result)."""
    return option(0, "seed of every random choice", minimum=0, maximum=SEED_MAX)


def device_option() -> Any:
    """The torch device."""
    return option("auto", "compute device: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps",
                  pattern=r"auto|cpu|mps|cuda(:\d+)?")


def parameter_name(name: str) -> str:
    """The Slicer parameter-node field of an option: snake_case -> camelCase (n_bootstrap -> nBootstrap)."""
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def flag(name: str) -> str:
    """The command-line flag of an option (n_bootstrap -> --n-bootstrap)."""
    return "--" + name.replace("_", "-")


T = TypeVar("T", bound="Options")


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the pipelines' option classes: validation and the conversions listed above."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _checked(f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_strings(cls: type[T], values: Mapping[str, str], *, strict: bool = True) -> T:
        """From text values (a manifest row); empty strings keep the default.

        With `strict`, a name that is not an option is an error; otherwise it is ignored.
        """
        hints = _hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if strict and unknown:
            raise OptionsError(f"unknown option(s) {', '.join(unknown)} for {cls.__name__}: "
                               f"known are {', '.join(known)}")
        parsed = {name: _parse(name, hints[name], text) for name, text in values.items()
                  if name in known and text is not None and str(text).strip() != ""}
        return cls(**parsed)

    @classmethod
    def from_attributes(cls: type[T], source: Any) -> T:
        """From an object with one camelCase attribute per option (a Slicer parameter node)."""
        values = {}
        for f in dataclasses.fields(cls):
            value = getattr(source, parameter_name(f.name))
            if f.metadata["path"] and str(value or "").strip() in ("", "."):
                value = None
            values[f.name] = value
        return cls(**values)

    @classmethod
    def from_namespace(cls: type[T], args: argparse.Namespace) -> T:
        """From parsed command-line arguments made by `add_arguments`."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                      if hasattr(args, f.name)})

    def replace(self: T, **changes: Any) -> T:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values by option name (for JSON, job identities, model cards)."""
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, *, exclude: Sequence[str] = ()) -> None:
        """Add one argument per option (except `exclude`) to `parser`."""
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in exclude:
                continue
            kind = _base_type(hints[f.name])
            meta = f.metadata
            text = meta["help"] + _describe_limits(f) + ("" if f.default is None else " (default: %(default)s)")
            names = [flag(f.name)]
            if kind is bool:
                parser.add_argument(*names, dest=f.name, default=f.default,
                                    action=argparse.BooleanOptionalAction, help=text)
                continue
            parser.add_argument(*names, dest=f.name, default=f.default, type=_cli_type(f.name, kind),
                                choices=meta["choices"], metavar=meta["metavar"], help=text)
            for old, release in meta["deprecated"].items():
                parser.add_argument(old, dest=f.name, type=_cli_type(f.name, kind), help=argparse.SUPPRESS,
                                    action=deprecated_alias(names[0], release))


def resolve(cls: type[T], options: T | None, changes: Mapping[str, Any]) -> T:
    """`options` (default: cls()) with keyword `changes` applied: the keyword form of the Python API."""
    if options is not None and not isinstance(options, cls):
        raise OptionsError(f"options must be a {cls.__name__}, got {type(options).__name__}")
    base = options if options is not None else cls()
    return base.replace(**changes) if changes else base


def deprecated_alias(new: str, release: str) -> type[argparse.Action]:
    """An argparse action for an old spelling: stores the value and says what replaces it."""

    class _Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"warning: {option_string} is deprecated and will be removed in {release}; "
                  f"use {new}", file=sys.stderr)
            setattr(namespace, self.dest, values)

    return _Deprecated


# ---------------------------------------------------------------------------------------------- helpers


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(hint: Any) -> type:
    """int, float, bool or str; Optional[X] -> X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _describe_limits(f: dataclasses.Field) -> str:
    lo, hi = (_number(f.metadata[k]) for k in ("minimum", "maximum"))
    if lo is not None and hi is not None:
        return f"; {lo}..{hi}"
    if lo is not None:
        return f"; at least {lo}"
    return ""


def _number(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _cli_type(name: str, kind: type):
    def convert(text: str):
        try:
            return _parse(name, kind, text)
        except OptionsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = kind.__name__
    return convert


def _parse(name: str, hint: Any, text: Any) -> Any:
    """Text -> the option's type; values that already have a type pass unchanged."""
    if not isinstance(text, str):
        return text
    kind = _base_type(hint)
    value = text.strip()
    if kind is bool:
        lowered = value.lower()
        if lowered not in _TRUE + _FALSE:
            raise OptionsError(f"option {name}: '{text}' is not a yes/no value (use true or false)")
        return lowered in _TRUE
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise OptionsError(f"option {name}: '{text}' is not {what}") from None
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _checked(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    """The value after type, choice and range checks (ints given as integral floats become ints)."""
    if value is None:
        if _optional(hint):
            return None
        raise OptionsError(f"option {f.name} needs a value")
    value = _typed(f.name, _base_type(hint), value)
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise OptionsError(f"option {f.name} must be one of {', '.join(meta['choices'])}, got {value!r}")
    if meta["pattern"] and not re.fullmatch(meta["pattern"], value):
        raise OptionsError(f"option {f.name}: {value!r} is not valid ({meta['help']})")
    lo, hi = meta["minimum"], meta["maximum"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        limits = _describe_limits(f).lstrip("; ")
        raise OptionsError(f"option {f.name} must be {limits}, got {value!r}")
    return value


def _typed(name: str, kind: type, value: Any) -> Any:
    """`value` as `kind` (bool, int, float or str) when it is one, else OptionsError."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool and isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    if kind is int and number and float(value).is_integer():
        return int(value)
    if kind is float and number and value == value:
        return float(value)
    if kind is str and isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "text"}[kind]
    raise OptionsError(f"option {name} must be {expected}, got {value!r}")
