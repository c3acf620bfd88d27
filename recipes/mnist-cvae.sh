#!/usr/bin/env bash
# mnist-cvae: a convolutional VAE whose decoder also takes the class (Sohn et al. 2015; Kingma et al. 2014's
# analogies): the encoder sees only the image, so z keeps the style and the label sets the digit. beta = 4 keeps
# the class out of z (chosen on validation analogies: docs/experiments/2026-12-02-mnist-cvae-analogies.md).
# Model card: docs/models/mnist-cvae.md. Run: bash recipes/mnist-cvae.sh (about 1.5 h on 2 CPU cores).
set -euo pipefail
DATA=${DATA:-data/mnist.npz}
RUNS=${RUNS:-runs}
MODELS=${MODELS:-exported_models}
TOY_DATA=synthetic:240

latentgen-train vae --data $DATA --out $RUNS/mnist-cvae --architecture conv --conditional --latent-dim 16 --beta 4 \
    --epochs 30 --batch-size 100 --warmup-steps 200
latentgen-train evaluate --vae $RUNS/mnist-cvae/best.pt --data $DATA --classifier training/weights/mnist-classifier.pt \
    --importance-samples 100 --out $RUNS/mnist-cvae/evaluation.json
latentgen-train export --vae $RUNS/mnist-cvae/best.pt --data $DATA --evaluation $RUNS/mnist-cvae/evaluation.json \
    --out $MODELS --id mnist-cvae --hardware "2-core AMD EPYC CPU (no GPU)" \
    --description "Convolutional VAE (two stride-2 stages of 64 and 128 channels each way, 16-D latent, beta = 4) with a class-conditional decoder, Bernoulli pixels; MNIST"
