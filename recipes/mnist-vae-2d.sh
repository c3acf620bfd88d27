#!/usr/bin/env bash
# mnist-vae-2d: Kingma & Welling's MLP VAE with a 2-D latent, so that a client can draw the digit manifold.
# Model card: docs/models/mnist-vae-2d.md. Run: bash recipes/mnist-vae-2d.sh (about 1 h on 2 CPU cores).
set -euo pipefail
DATA=${DATA:-data/mnist.npz}
RUNS=${RUNS:-runs}
MODELS=${MODELS:-exported_models}
TOY_DATA=synthetic:240

latentgen-train vae --data $DATA --out $RUNS/mnist-vae-2d --latent-dim 2 --epochs 50 --batch-size 100 \
    --warmup-steps 200
latentgen-train evaluate --vae $RUNS/mnist-vae-2d/best.pt --data $DATA --out $RUNS/mnist-vae-2d/evaluation.json
latentgen-train export --vae $RUNS/mnist-vae-2d/best.pt --data $DATA --evaluation $RUNS/mnist-vae-2d/evaluation.json \
    --out $MODELS --id mnist-vae-2d --hardware "2-core AMD EPYC CPU (no GPU)"
