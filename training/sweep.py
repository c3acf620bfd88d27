"""`latentgen-train sweep`: prior samples at every setting of guidance and temperature, judged against the
validation images, and the package's sampling defaults chosen from them by a stated rule.

Guidance and a low temperature make samples easier to classify (the Inception Score and label accuracy rise) while
moving them away from the data (the Fréchet distance and KID rise too): a default chosen on the first kind of
figure alone gives samples whose distribution is far from the data's. So the rule picks the setting closest to
the data (the least Fréchet distance) among those that meet the floors on the classifier's figures. The sweep reads
the validation split only; `evaluate --defaults SWEEP.json` then measures the chosen settings on the test split.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from contract.images import png_bytes, tile
from training.checkpoint import load_model
from training.data import DataOptions, image_shape, load_splits
from training.draw import CLASS_DRAWS, Setting, class_frequencies, prior_samples
from training.evaluate import halves_distance, sample_judge, write_report
from training.models.pixelcnn import PixelCNN
from training.run import pick_device

RULE = (
    "labelled requests: the setting of least Fréchet distance among those whose label accuracy is at least "
    "{accuracy:g} and whose Inception Score is at least {score:g} (none: the highest label accuracy); requests "
    "without a label: among every way of drawing them (a class drawn for each sample, {classes}, stratified over "
    "blocks of consecutive seeds, at each labelled setting, or 'no label' at each temperature), the least Fréchet "
    "distance among those whose Inception Score is at least {score:g} (none: the least Fréchet distance); all on "
    "the validation split"
)
CLASSES = {"uniform": "uniformly", "data": "as often as among the training images"}
UNCONDITIONAL_RULE = (
    "the temperature of least Fréchet distance among those whose Inception Score is at least {score:g} (none: the "
    "least Fréchet distance), on the validation split"
)


@dataclass
class SweepOptions(DataOptions):
    vqvae: str = "runs/vqvae/best.pt"
    prior: str = "runs/prior/best.pt"
    classifier: str = ""  # as evaluate's: the judge of the samples (none: distances in the pixels' components)
    guidance: str = "0,0.3,1,3"  # the classifier-free guidance weights tried, comma-separated
    temperature: str = "1"  # the temperatures tried, comma-separated
    # How classes are drawn for samples without a label, comma-separated: uniformly (labelled samples, whose labels
    # cycle through the classes, stand for them) and/or as often as among the training images (data: drawn at
    # each guidance and temperature); stratified over blocks of consecutive seeds either way, as the chosen
    # defaults then draw them (contract.sampling.any_classes)
    unlabelled_classes: str = "uniform"
    samples: int = 5000  # per setting
    seed: int = 10_000  # sample i of each setting from seed + i: other seeds than evaluate's
    # The rule's floors: label accuracy of labelled samples, and the Inception Score of any chosen setting
    min_label_accuracy: float = 0.97
    min_inception_score: float = 0.0
    device: str = "auto"
    out: str = "runs/sweep"  # sweep.json (rows added as they are measured) and one picture per setting


def numbers(text: str, name: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--{name} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"--{name} names no value")
    return values


def sweep_settings(
    prior: PixelCNN, guidances: list[float], temperatures: list[float], frequencies: tuple[float, ...] | None = None
) -> list[Setting]:
    """Every setting the prior can be drawn at: labelled samples at each guidance (guidance needs a prior that
    learnt "no label") and temperature, and "no label" at each temperature (with `frequencies`, also classes drawn
    with those chances at each guidance and temperature); one per temperature when unconditional."""
    if not prior.config.num_classes:
        return [Setting("none", temperature=t) for t in temperatures]
    if prior.config.no_label is None:
        return [Setting("labelled", temperature=t) for t in temperatures]
    pairs = [(g, t) for g in guidances for t in temperatures]
    labelled = [Setting("labelled", g, t) for g, t in pairs]
    weighted = [Setting("any_class", g, t, frequencies, stratified=True) for g, t in pairs if frequencies]
    return labelled + weighted + [Setting("no_label", temperature=t) for t in temperatures]


def drawn_classes(text: str) -> set[str]:
    """The ways --unlabelled-classes names of drawing classes for samples without a label."""
    named = {part.strip() for part in text.split(",") if part.strip()}
    if not named or not named <= set(CLASS_DRAWS):
        raise ValueError(f"--unlabelled-classes takes uniform, data or both (comma-separated), got {text!r}")
    return named


def choose(rows: list[dict], options: SweepOptions) -> dict:
    """The defaults the rule (RULE) picks from the sweep's rows; for requests without a label, labelled samples
    stand for classes drawn uniformly (where --unlabelled-classes names uniform), as their labels cycle through the
    classes."""

    def least_distance(candidates: list[dict]) -> dict:
        return min(candidates, key=lambda row: row["metrics"]["frechet_distance"])

    def scores(row: dict) -> bool:
        return row["metrics"].get("inception_score", 0.0) >= options.min_inception_score

    if rows[0]["labels"] == "none":
        return {"temperature": least_distance([row for row in rows if scores(row)] or rows)["temperature"]}
    labelled = [row for row in rows if row["labels"] == "labelled"]
    accurate = [row for row in labelled if row["metrics"]["label_accuracy"] >= options.min_label_accuracy]
    candidates = [row for row in accurate if scores(row)]
    best = least_distance(candidates) if candidates else max(labelled, key=lambda row: row["metrics"]["label_accuracy"])
    defaults = {"guidance": best["guidance"], "temperature": best["temperature"]}
    if not any(row["labels"] == "no_label" for row in rows):
        return defaults
    uniform = "uniform" in drawn_classes(options.unlabelled_classes)
    ways = [row for row in rows if row["labels"] != "labelled" or uniform]
    unlabelled = least_distance([row for row in ways if scores(row)] or ways)
    mode = "no_label" if unlabelled["labels"] == "no_label" else "any_class"
    return defaults | {
        "unlabelled": mode,
        "unlabelled_classes": "data" if unlabelled.get("class_frequencies") else "uniform",
        "class_draw": "stratified",
        "unlabelled_guidance": unlabelled["guidance"],
        "unlabelled_temperature": unlabelled["temperature"],
    }


def run_sweep(options: SweepOptions) -> dict:
    """Every setting's figures on the validation split, a picture of each, and the chosen defaults: written to
    OUT/sweep.json and returned."""
    device = pick_device(options.device)
    vqvae = load_model(options.vqvae, "vqvae", device)
    prior: PixelCNN = load_model(options.prior, "prior", device)
    shape = image_shape(vqvae.config)
    splits = load_splits(options, options.seed, shape)
    judge, state = sample_judge(options, shape, prior.config.num_classes, splits, splits.val, device)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    identity = {
        "vqvae": options.vqvae, "prior": options.prior, "classifier": options.classifier, "data": splits.name,
        "data_split": splits.split, "samples": options.samples, "seed": options.seed,
    }  # fmt: skip
    rows = earlier_rows(out / "sweep.json", identity)
    weighted = "data" in drawn_classes(options.unlabelled_classes)
    frequencies = class_frequencies(splits.train.labels, prior.config.num_classes) if weighted else None
    guidances, temperatures = numbers(options.guidance, "guidance"), numbers(options.temperature, "temperature")
    settings = sweep_settings(prior, guidances, temperatures, frequencies)
    todo = [setting for setting in settings if setting.name not in {row["name"] for row in rows}]
    report = {
        "split": "validation",
        "images": len(splits.val),
        "feature_space": judge.feature_space,
        "reference": {"real_halves": halves_distance(judge)}
        | ({"classifier_test_accuracy": state["test_accuracy"]} if state else {}),
        "rule": (UNCONDITIONAL_RULE if settings[0].labels == "none" else RULE).format(
            accuracy=options.min_label_accuracy,
            score=options.min_inception_score,
            classes=" or ".join(
                CLASSES[way] for way in CLASS_DRAWS if way in drawn_classes(options.unlabelled_classes)
            ),
        ),
        "identity": identity,
    }
    for number, setting in enumerate(todo, 1):
        images, labels = prior_samples(vqvae, prior, setting, n=options.samples, seed=options.seed)
        metrics = judge.score(images, labels)
        picture = f"{setting.name}.png"
        (out / picture).write_bytes(png_bytes(tile(images[:100].numpy(), 10)))
        rows = sorted([*rows, asdict(setting) | {"name": setting.name, "metrics": metrics, "picture": picture}],
                      key=lambda row: (row["labels"], row["guidance"], row["temperature"]))  # fmt: skip
        write_report(report | {"rows": rows, "chosen": choose(rows, options)}, out / "sweep.json")
        print(f"[{number}/{len(todo)}] {setting.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    report |= {"rows": rows, "chosen": choose(rows, options)}
    write_report(report, out / "sweep.json")
    return report


def earlier_rows(path: Path, identity: dict) -> list[dict]:
    """The rows an earlier sweep into the same folder measured with the same models, data, samples and seeds: a
    sweep stopped midway goes on where it was, and a second one with other settings adds its rows to the first's."""
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    if earlier.get("identity") != identity:
        raise FileExistsError(f"{path} holds a sweep of other models, data, samples or seeds: choose another --out")
    return earlier["rows"]


def markdown_table(report: dict, pictures: str = "") -> str:
    """The sweep's rows as a Markdown table, for the model card; with `pictures` (the folder the card finds the
    sweep's pictures in), a link to each setting's."""
    columns = ("inception_score", "label_accuracy", "frechet_distance")
    linked = " samples |" if pictures else ""
    lines = [
        "| drawn | guidance | temperature | IS | label accuracy | FD | KID x 1000 (sd over blocks) |" + linked,
        "|---|---:|---:|---:|---:|---:|---:|" + ("---|" if pictures else ""),
    ]
    for row in report["rows"]:
        m = row["metrics"]
        cells = [f"{m[c]:.3f}" if c in m else "" for c in columns]
        kid = f"{1000 * m['kid']:.1f} ± {1000 * m['kid_std']:.1f}"
        link = f" [{row['name']}]({pictures}/{row['picture']}) |" if pictures else ""
        drawn = row["labels"] + (" (training shares)" if row.get("class_frequencies") else "")
        lines.append(
            f"| {drawn} | {row['guidance']:g} | {row['temperature']:g} | " + " | ".join(cells) + f" | {kid} |" + link
        )
    return "\n".join(lines)
