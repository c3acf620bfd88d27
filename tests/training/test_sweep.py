"""The sampling sweep: every setting judged on validation images, the defaults chosen by the stated rule, and
those defaults carried by evaluate and export into the manifest, which /sample follows."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.manifest import read_manifest
from contract.sampling import any_classes
from service.config import Settings
from service.registry import Registry
from service.sampling import SampleRequest, sample
from tests.conftest import DATA, TinyPipeline
from training import sweep
from training.data import ImageSet
from training.draw import class_frequencies
from training.evaluate import EvaluateOptions, evaluate_vqvae
from training.export.package import ExportOptions
from training.export.vqvae import export_vqvae
from training.sweep import SweepOptions, choose, markdown_table, run_sweep


def row(labels: str, guidance: float, temperature: float, fd: float, accuracy: float = 0.0, score: float = 9.0):
    metrics = {"frechet_distance": fd, "inception_score": score, "kid": 0.0, "kid_std": 0.0}
    if labels == "labelled":
        metrics["label_accuracy"] = accuracy
    chances = [0.6, 0.4] if labels == "any_class" else None  # classes drawn as often as among training images
    return {"labels": labels, "guidance": guidance, "temperature": temperature, "metrics": metrics} | (
        {"class_frequencies": chances} if chances else {}
    )


def test_the_rule_picks_the_least_distance_among_the_settings_that_meet_the_floors() -> None:
    rows = [
        row("labelled", 0, 1, fd=0.4, accuracy=0.95),  # closest to the data, but too often not the class asked
        row("labelled", 0.3, 1, fd=0.6, accuracy=0.975, score=8.9),  # accurate, but below the score floor
        row("labelled", 1, 1, fd=0.9, accuracy=0.99),
        row("labelled", 3, 1, fd=4.0, accuracy=1.0),
        row("no_label", 0, 1, fd=0.5, score=9.1),
    ]
    options = SweepOptions(min_label_accuracy=0.97, min_inception_score=9.0)
    assert choose(rows, options) == {
        "guidance": 1,
        "temperature": 1,
        "unlabelled": "any_class",  # a class drawn for each sample at guidance 0: the least distance overall
        "unlabelled_classes": "uniform",  # as uniformly as labelled samples' labels cycle
        "class_draw": "stratified",  # and balanced over consecutive seeds, as theirs are
        "unlabelled_guidance": 0,
        "unlabelled_temperature": 1,
    }
    strict = choose(rows, SweepOptions(min_label_accuracy=0.999, min_inception_score=9.0))
    assert strict["guidance"] == 3  # none qualifies: the highest label accuracy
    rows[0]["metrics"]["inception_score"] = 8.0
    assert choose(rows, options)["unlabelled"] == "no_label"  # now "no label" is the closest that scores enough
    rows.append(row("any_class", 0.3, 1, fd=0.45, score=9.2))  # classes drawn with the training images' shares
    weighted = choose(rows, options)
    assert (weighted["unlabelled"], weighted["unlabelled_classes"], weighted["unlabelled_guidance"]) == (
        "any_class", "data", 0.3
    )  # fmt: skip
    rows[0]["metrics"]["inception_score"] = 9.0  # labelled w0 is closest again, but stands for uniform classes ...
    assert choose(rows, options)["unlabelled_classes"] == "uniform"
    only_data = choose(rows, replace(options, unlabelled_classes="data"))  # ... which this sweep did not ask for
    assert (only_data["unlabelled_classes"], only_data["guidance"]) == ("data", 1)
    with pytest.raises(ValueError, match="uniform, data or both"):
        choose(rows, replace(options, unlabelled_classes="often"))


def test_evaluate_takes_the_class_draw_only_where_classes_are_drawn() -> None:
    train = ImageSet(torch.zeros(4, 1, 28, 28), torch.tensor([0, 1, 1, 2]))
    drawn = EvaluateOptions(unlabelled="any_class", class_draw="stratified").sampling(train, 3)
    assert (drawn["class_draw"], drawn["class_frequencies"]) == ("stratified", None)
    assert EvaluateOptions(unlabelled="no_label", class_draw="stratified").sampling(train, 3)["class_draw"] is None
    with pytest.raises(ValueError, match="independent or stratified"):
        EvaluateOptions(unlabelled="any_class", class_draw="balanced").sampling(train, 3)


def test_class_frequencies_are_the_shares_of_the_known_labels() -> None:
    assert class_frequencies(np.array([0, 2, 2, -1, 2, 0]), 4) == (0.4, 0.0, 0.6, 0.0)  # -1: unknown, not counted
    with pytest.raises(ValueError, match="known labels"):
        class_frequencies(np.array([0, 5]), 4)
    with pytest.raises(ValueError, match="known labels"):
        class_frequencies(np.array([-1, -1]), 4)


def test_an_unconditional_prior_chooses_a_temperature_only() -> None:
    rows = [row("none", 0, 0.9, fd=2.0), row("none", 0, 1.0, fd=1.0)]
    assert choose(rows, SweepOptions()) == {"temperature": 1.0}


@pytest.fixture(scope="module")
def swept(tiny_pipeline: TinyPipeline, optional_labels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(
        SweepOptions(
            data=DATA, vqvae=str(tiny_pipeline.vqvae), prior=str(optional_labels[2]),
            classifier=str(tiny_pipeline.classifier), guidance="0,1", temperature="0.8,1", samples=30,
            min_label_accuracy=0.0, device="cpu", out=str(out),
        )
    )  # fmt: skip
    return out


def test_the_sweep_judges_every_setting_on_validation_images_with_a_picture_each(swept: Path) -> None:
    report = json.loads((swept / "sweep.json").read_text())
    assert report["split"] == "validation" and report["identity"]["samples"] == 30
    settings = [(r["labels"], r["guidance"], r["temperature"]) for r in report["rows"]]
    assert settings == [
        ("labelled", 0, 0.8), ("labelled", 0, 1), ("labelled", 1, 0.8), ("labelled", 1, 1),
        ("no_label", 0, 0.8), ("no_label", 0, 1),
    ]  # fmt: skip
    for r in report["rows"]:
        assert (swept / r["picture"]).read_bytes().startswith(b"\x89PNG")
        assert {"inception_score", "frechet_distance", "kid", "kid_std"} <= set(r["metrics"])
    assert "label_accuracy" in report["rows"][0]["metrics"]
    assert report["chosen"] == choose(report["rows"], SweepOptions(min_label_accuracy=0.0))
    assert "least Fréchet distance" in report["rule"]
    assert markdown_table(report).count("\n") == len(report["rows"]) + 1


def test_a_second_sweep_into_the_folder_adds_its_rows_and_measures_only_new_settings(
    tiny_pipeline: TinyPipeline, optional_labels, swept: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(swept, tmp_path / "sweep")
    before = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    drawn = []
    real_prior_samples = sweep.prior_samples
    monkeypatch.setattr(sweep, "prior_samples", lambda *a, **k: drawn.append(a[2]) or real_prior_samples(*a, **k))
    options = SweepOptions(
        data=DATA, vqvae=str(tiny_pipeline.vqvae), prior=str(optional_labels[2]),
        classifier=str(tiny_pipeline.classifier), guidance="1,2", temperature="1", samples=30,
        min_label_accuracy=0.0, device="cpu", out=str(tmp_path / "sweep"),
    )  # fmt: skip
    after = run_sweep(options)
    assert [setting.name for setting in drawn] == ["labelled-w2-t1"]  # the others were measured before
    assert len(after["rows"]) == len(before["rows"]) + 1
    assert [row for row in after["rows"] if row["name"] != "labelled-w2-t1"] == before["rows"]
    weighted = run_sweep(replace(options, guidance="1", unlabelled_classes="uniform,data"))
    assert [setting.name for setting in drawn[1:]] == ["any_class-data-stratified-w1-t1"]
    added = next(row for row in weighted["rows"] if row["name"] == "any_class-data-stratified-w1-t1")
    assert len(added["class_frequencies"]) == 10 and abs(sum(added["class_frequencies"]) - 1) < 1e-9
    assert "label_accuracy" in added["metrics"]  # the classes drawn are known, so the judge checks them too
    assert "(training shares)" in markdown_table(weighted)
    with pytest.raises(FileExistsError, match="other models"):
        run_sweep(replace(options, samples=31))
    with pytest.raises(ValueError, match="at least 1"):
        run_sweep(replace(options, samples=0, out=str(tmp_path / "none")))


def test_the_chosen_defaults_travel_through_evaluate_and_export_to_the_service(
    tiny_pipeline: TinyPipeline, optional_labels, swept: Path, tmp_path: Path
) -> None:
    chosen = json.loads((swept / "sweep.json").read_text())["chosen"]
    # Defaults that differ between labelled and unlabelled samples, so that following the wrong one shows.
    sweep = json.loads((swept / "sweep.json").read_text())
    sweep["chosen"] = chosen | {"guidance": 1.0, "temperature": 0.8, "unlabelled": "any_class"}
    sweep["chosen"] |= {"unlabelled_guidance": 0.0, "unlabelled_temperature": 1.0, "unlabelled_classes": "data"}
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    report = evaluate_vqvae(
        EvaluateOptions(
            data=DATA, vqvae=str(tiny_pipeline.vqvae), prior=str(optional_labels[2]),
            classifier=str(tiny_pipeline.classifier), samples=20, defaults=str(tmp_path / "sweep.json"),
            device="cpu", out=str(tmp_path / "evaluation.json"),
        )
    )  # fmt: skip
    frequencies = report["sampling"].pop("class_frequencies")
    assert report["sampling"] | {"unlabelled_classes": "data"} == sweep["chosen"]
    assert len(frequencies) == 10 and abs(sum(frequencies) - 1) < 1e-9  # the training split's classes' shares
    assert {"frechet_distance", "kid", "unconditional_frechet_distance", "unconditional_kid"} <= set(report["metrics"])
    assert "temperature 0.8" in report["method"] and "w = 1" in report["method"]
    package = export_vqvae(
        ExportOptions(
            vqvae=str(tiny_pipeline.vqvae), prior=str(optional_labels[2]), evaluation=str(tmp_path / "evaluation.json"),
            data=DATA, out=str(tmp_path / "models"), id="swept",
        )
    )  # fmt: skip
    prior = read_manifest(package).prior
    assert (prior.guidance, prior.temperature, prior.unlabelled) == (1.0, 0.8, "any_class")
    assert (prior.unlabelled_guidance, prior.unlabelled_temperature) == (0.0, 1.0)
    assert prior.class_frequencies == frequencies
    assert prior.class_draw == "stratified"
    registry = Registry(Settings(MODELS_DIR=tmp_path / "models"))
    registry.load()
    try:
        model = registry.get("swept")
        labelled = sample(model, SampleRequest(n=3, seed=5, labels=[2]))
        unlabelled = sample(model, SampleRequest(n=3, seed=5))
        asked = sample(model, SampleRequest(n=3, seed=5, labels=[2], guidance=1.0, temperature=0.8))
        assert (labelled["guidance"], labelled["temperature"]) == (1.0, 0.8)
        assert (unlabelled["guidance"], unlabelled["temperature"]) == (0.0, 1.0)
        assert (unlabelled["labels"] == any_classes(5 + np.arange(3), 10, frequencies, stratified=True)).all()
        assert (labelled["codes"] == asked["codes"]).all()  # the defaults are what asking for them gives
    finally:
        registry.close()
