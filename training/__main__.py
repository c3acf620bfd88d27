"""One command line for every training stage: `latentgen-train <command> --help` (or `python -m training`).

vqvae       stage 1: train the VQ-VAE autoencoder
prior       stage 2: encode the dataset, train the PixelCNN prior on its codes
vae         train a VAE of the family (MLP, conv, ResNet, transformer; beta, warm-up, free bits)
classifier  train the classifier that scores samples
evaluate    measure a VQ-VAE and its prior, or a VAE, on the test split
sweep       draw prior samples at each guidance and temperature on the validation split; choose the defaults
average     average the weights of checkpoints fine-tuned from one ancestor (a model soup)
export      write the ONNX model package, checked against torch
recipe      run a bundled package's recipe (recipes/<id>.sh), or --toy: the same at toy size
"""

import argparse
import json
import sys
from pathlib import Path

from training import distributed, recipe
from training.average import AverageOptions, write_average
from training.classifier import ClassifierOptions, train_classifier
from training.cli import add_options, build
from training.evaluate import EvaluateOptions, evaluate_vae, evaluate_vqvae
from training.models.classifier import ClassifierConfig
from training.models.pixelcnn import PixelCNNConfig
from training.models.vae import VAEConfig
from training.models.vq_vae import VQVAEConfig
from training.prior import PriorOptions, train_prior
from training.run import RunOptions
from training.sweep import SweepOptions, markdown_table, run_sweep
from training.vae import VAEOptions, train_vae
from training.vqvae import VQVAEOptions, train_vqvae

# Fields set from the data or the stage-1 model rather than from the command line.
IMAGE = ("image_channels", "image_height", "image_width")
DERIVED = {
    VQVAEConfig: IMAGE,
    PixelCNNConfig: ("num_codes", "grid_height", "grid_width", "num_classes", "label_dropout"),
    ClassifierConfig: (*IMAGE, "num_classes"),
    VAEConfig: (*IMAGE, "num_classes"),
}


def parse(command: str, description: str, argv: list[str], *option_classes: type) -> argparse.Namespace:
    parser = argparse.ArgumentParser(f"python -m training {command}", description=description)
    for cls in option_classes:
        add_options(parser, cls, exclude=DERIVED.get(cls, ()))
    if RunOptions in option_classes:
        parser.set_defaults(out=f"runs/{command}")  # each training stage has its own run folder
    return parser.parse_args(argv)


def vae_command(argv: list[str]) -> None:
    args = parse(
        "vae",
        "Train a VAE; logs KL per dimension and active units each epoch.",
        argv,
        RunOptions,
        VAEOptions,
        VAEConfig,
    )
    print(train_vae(build(RunOptions, args), build(VAEOptions, args), build(VAEConfig, args)))


def vqvae_command(argv: list[str]) -> None:
    args = parse("vqvae", "Stage 1: train the VQ-VAE.", argv, RunOptions, VQVAEOptions, VQVAEConfig)
    print(train_vqvae(build(RunOptions, args), build(VQVAEConfig, args), build(VQVAEOptions, args)))


def prior_command(argv: list[str]) -> None:
    args = parse(
        "prior",
        "Stage 2: train the PixelCNN prior on the dataset's codes.",
        argv,
        RunOptions,
        PriorOptions,
        PixelCNNConfig,
    )
    print(train_prior(build(RunOptions, args), build(PriorOptions, args), build(PixelCNNConfig, args)))


def classifier_command(argv: list[str]) -> None:
    args = parse(
        "classifier", "Train the classifier that scores samples.", argv, RunOptions, ClassifierOptions, ClassifierConfig
    )
    print(train_classifier(build(RunOptions, args), build(ClassifierConfig, args), build(ClassifierOptions, args)))


def evaluate_command(argv: list[str]) -> None:
    args = parse(
        "evaluate", "Measure a VQ-VAE and its prior, or a VAE (--vae), on the test split.", argv, EvaluateOptions
    )
    options = build(EvaluateOptions, args)
    print(json.dumps(evaluate_vae(options) if options.vae else evaluate_vqvae(options), indent=2))


def sweep_command(argv: list[str]) -> None:
    args = parse(
        "sweep", "Draw prior samples at each setting on the validation split; choose the defaults.", argv, SweepOptions
    )
    report = run_sweep(build(SweepOptions, args))
    print(markdown_table(report), f"rule: {report['rule']}", f"chosen: {json.dumps(report['chosen'])}", sep="\n")


def average_command(argv: list[str]) -> None:
    args = parse("average", "Average the weights of checkpoints fine-tuned from one ancestor.", argv, AverageOptions)
    print(write_average(build(AverageOptions, args)))


def export_command(argv: list[str]) -> None:
    # Imported here, not above: export needs the contract's manifest schema (pydantic) and onnxruntime, which a
    # torch-only GPU machine lacks; every other command runs there (tools/gpu.sh).
    from training.export.package import ExportOptions
    from training.export.vae import export_vae
    from training.export.vqvae import export_vqvae

    args = parse("export", "Write the ONNX model package, checked against torch.", argv, ExportOptions)
    options = build(ExportOptions, args)
    print(export_vae(options) if options.vae else export_vqvae(options))


def recipe_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser("python -m training recipe", description=recipe.__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path, help="recipes/<id>.sh")
    parser.add_argument("--toy", action="store_true", help="toy size: synthetic data, one epoch, tiny widths")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="e.g. DATA=... RUNS=...")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    recipe.run_recipe(args.recipe, overrides, toy_size=args.toy, run=main)


COMMANDS = {
    "vae": vae_command,
    "vqvae": vqvae_command,
    "prior": prior_command,
    "classifier": classifier_command,
    "evaluate": evaluate_command,
    "sweep": sweep_command,
    "average": average_command,
    "export": export_command,
    "recipe": recipe_command,
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        raise SystemExit(2)
    try:
        COMMANDS[argv[0]](argv[1:])
    # Bad data, options or files (a missing one, or a run that would be overwritten): the message says which.
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    finally:
        distributed.stop()  # under torchrun: leave the process group


if __name__ == "__main__":
    main()
