"""Typed command-line options generated from dataclasses, so each default lives in one place."""

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def add_options(parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """One `--field-name` option per dataclass field, typed and defaulted from the field."""
    group = parser.add_argument_group(cls.__name__)
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        kind = type(default)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif default is None:
            group.add_argument(flag, type=str, default=None)
        else:
            group.add_argument(flag, type=kind, default=default, help=f"default: {default}")


def build(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The dataclass from the parsed options that belong to it."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **overrides})
