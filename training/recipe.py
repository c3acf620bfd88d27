"""`python -m training recipe recipes/<id>.sh`: run a bundled package's recipe, the exact commands that made it.

A recipe is a plain bash script (`bash recipes/<id>.sh` runs it too): `NAME=${NAME:-default}` settings, then one
`latentgen-train ...` command per line (a trailing backslash continues it). The runner reads the settings and the
commands, runs each command in this process, and stops at the first failure. `--toy` runs the same commands at toy
size, as the tests do: the recipe's TOY_DATA (synthetic images of its data's shape) for DATA, one epoch, tiny widths;
only options a command already has are changed, so every command stays one the real recipe runs. A toy run writes
its runs and packages into a new scratch folder (where RUNS and MODELS are not set), never into exported_models/,
where a toy package would be served as the newest version of the real one.
"""

import re
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SETTING = re.compile(r"^([A-Z_]+)=(?:\$\{\1:-(.*)\}|(.*))$")  # NAME=${NAME:-default} or NAME=value
VARIABLE = re.compile(r"\$\{?([A-Z_]+)\}?")
COMMAND = "latentgen-train"
# Toy sizes: a few seconds per command on a CPU.
TOY = {
    "--epochs": "1",
    "--batch-size": "32",
    "--warmup-steps": "2",
    "--hidden": "16",
    "--residual-hidden": "8",
    "--num-codes": "16",
    "--code-dim": "4",
    "--channels": "8",
    "--layers": "3",
    "--head-hidden": "16",
    "--width": "16",
    "--depth": "1",
    "--samples": "10",
    "--importance-samples": "4",
}


@dataclass
class Recipe:
    path: Path
    settings: dict[str, str] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)  # argument lists, without the command name


def read_recipe(path: Path, overrides: dict[str, str] | None = None) -> Recipe:
    """The recipe's settings (overridden by `overrides`, as the environment would) and its commands."""
    recipe = Recipe(path, dict(overrides or {}))
    lines = re.sub(r"\\\n", " ", path.read_text()).splitlines()  # join continued lines
    for line in (line.strip() for line in lines):
        if setting := SETTING.match(line):
            name, default, value = setting.groups()
            recipe.settings.setdefault(name, default if default is not None else value)
        elif line.startswith(COMMAND + " "):
            expanded = VARIABLE.sub(lambda m: recipe.settings.get(m.group(1), m.group(0)), line)
            words = shlex.split(expanded)[1:]
            if unknown := [w for w in words if "$" in w]:
                raise ValueError(f"{path}: {unknown[0]} names a setting the recipe does not define")
            recipe.commands.append(words)
    if not recipe.commands:
        raise ValueError(f"{path} holds no `{COMMAND}` command")
    return recipe


def toy(words: list[str]) -> list[str]:
    """The command at toy size: every TOY option it has takes its toy value."""
    out = list(words)
    for i, word in enumerate(out[:-1]):
        if word in TOY:
            out[i + 1] = TOY[word]
    return out


def run_recipe(
    path: Path, overrides: dict[str, str] | None = None, *, toy_size: bool = False, run: Callable[[list[str]], None]
) -> Recipe:
    """Runs the recipe's commands in order through `run` (the command line's main: `latentgen-train` itself)."""
    recipe = read_recipe(path, overrides)
    if toy_size:
        given = overrides or {}
        toy_settings = {"DATA": recipe.settings.get("TOY_DATA", "synthetic:240")}
        if not {"RUNS", "MODELS"} <= given.keys():
            scratch = Path(tempfile.mkdtemp(prefix=f"latentgen-toy-{path.stem}-"))
            toy_settings |= {"RUNS": str(scratch / "runs"), "MODELS": str(scratch / "exported_models")}
            print(f"toy size: writing into {scratch}", flush=True)
        recipe = read_recipe(path, toy_settings | given)
    for words in recipe.commands:
        words = toy(words) if toy_size else words
        print(f"+ {COMMAND} {shlex.join(words)}", flush=True)
        run(words)
    return recipe
