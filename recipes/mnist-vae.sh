#!/usr/bin/env bash
# mnist-vae: version 1 is Kingma & Welling's MLP VAE exactly (one tanh layer of 500, 20-D latent, Bernoulli decoder,
# 50 epochs); version 2, the one served by default, has a second tanh layer of 500 and trains 400 epochs.
# Model card: docs/models/mnist-vae.md. Run: bash recipes/mnist-vae.sh (about 1.5 h on 2 CPU cores, evaluations
# included).
set -euo pipefail
DATA=${DATA:-data/mnist.npz}
RUNS=${RUNS:-runs}
MODELS=${MODELS:-exported_models}
TOY_DATA=synthetic:240

latentgen-train vae --data $DATA --out $RUNS/mnist-vae-1 --latent-dim 20 --epochs 50 --batch-size 100 --warmup-steps 200
latentgen-train evaluate --vae $RUNS/mnist-vae-1/best.pt --data $DATA --out $RUNS/mnist-vae-1/evaluation.json
latentgen-train export --vae $RUNS/mnist-vae-1/best.pt --data $DATA --evaluation $RUNS/mnist-vae-1/evaluation.json \
    --out $MODELS --id mnist-vae --version 1 --hardware "2-core AMD EPYC CPU (no GPU)"
latentgen-train vae --data $DATA --out $RUNS/mnist-vae-2 --latent-dim 20 --hidden-layers 2 --epochs 400 \
    --batch-size 100
latentgen-train evaluate --vae $RUNS/mnist-vae-2/best.pt --data $DATA --out $RUNS/mnist-vae-2/evaluation.json
latentgen-train export --vae $RUNS/mnist-vae-2/best.pt --data $DATA --evaluation $RUNS/mnist-vae-2/evaluation.json \
    --out $MODELS --id mnist-vae --version 2 --hardware "2-core AMD EPYC CPU (no GPU)"
