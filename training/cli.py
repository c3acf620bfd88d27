"""Typed command-line options generated from dataclasses, so each default lives in one place."""

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def add_options(parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """One `--field-name` option per dataclass field, typed and defaulted from the field: `X | None` takes an X,
    `tuple[int, int]` two integers (`--image-size H W`)."""
    group = parser.add_argument_group(cls.__name__)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        flag = "--" + field.name.replace("_", "-")
        default, kind = field.default, hints[field.name]
        if isinstance(kind, types.UnionType):  # X | None
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            group.add_argument(flag, type=item, nargs=len(typing.get_args(kind)), default=default)
        else:
            group.add_argument(flag, type=kind, default=default, help=f"default: {default}")


def build(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The dataclass from the parsed options that belong to it."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **overrides})
