"""Every bundled package's recipe runs, command for command, at toy size on synthetic data, and is valid bash."""

import subprocess
import tempfile
from pathlib import Path

import pytest

from contract.manifest import read_manifest
from training.__main__ import main
from training.recipe import read_recipe, run_recipe, toy

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.sh"))


def test_there_is_a_recipe_for_every_bundled_package() -> None:
    bundled = {p.name for p in (RECIPES[0].parents[1] / "exported_models").iterdir() if p.is_dir()}
    assert bundled <= {recipe.stem for recipe in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_the_recipe_runs_at_toy_size(recipe: Path, tmp_path: Path) -> None:
    settings = {"RUNS": str(tmp_path / "runs"), "MODELS": str(tmp_path / "models")}
    ran = run_recipe(recipe, settings, toy_size=True, run=main)
    exports = [words for words in ran.commands if words[0] == "export"]
    for words in exports:
        model_id = words[words.index("--id") + 1]
        versions = list((tmp_path / "models" / model_id).iterdir())
        assert versions and all(read_manifest(v).id == model_id for v in versions)
    assert not exports or recipe.stem in {w[w.index("--id") + 1] for w in exports}


def test_a_toy_run_never_writes_into_the_bundled_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where a toy run's default RUNS=runs and MODELS=exported_models would land
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    ran = run_recipe(next(r for r in RECIPES if r.stem == "mnist-vae-2d"), toy_size=True, run=main)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch"]
    (folder,) = (tmp_path / "scratch").iterdir()
    assert ran.settings["MODELS"] == str(folder / "exported_models")
    assert [v.name for v in (folder / "exported_models" / "mnist-vae-2d").iterdir()] == ["1"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_the_recipe_is_valid_bash(recipe: Path) -> None:
    assert subprocess.run(["bash", "-n", str(recipe)], capture_output=True).returncode == 0


def test_toy_size_changes_only_the_options_a_command_has() -> None:
    assert toy(["vqvae", "--epochs", "30", "--lr", "2e-3"]) == ["vqvae", "--epochs", "1", "--lr", "2e-3"]


def test_a_setting_the_recipe_does_not_define_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.sh"
    path.write_text("RUNS=${RUNS:-runs}\nlatentgen-train vae --out $RUNS/a --data $NOWHERE\n")
    with pytest.raises(ValueError, match="NOWHERE"):
        read_recipe(path)
    settings = read_recipe(path, {"NOWHERE": "synthetic:10"})
    assert settings.commands == [["vae", "--out", "runs/a", "--data", "synthetic:10"]]
