#!/usr/bin/env bash
# frey-vae: Kingma & Welling's Frey Face experiment. An MLP VAE (one tanh layer of 200 each way) with a Gaussian
# decoder (a learned scale per pixel) on the 28x20 grey-level faces; latents of 2, 5, 10 and 20 dimensions for the
# model card's table, the 2-D one bundled for its manifold (their figure 4a).
# Model card: docs/models/frey-vae.md. Run: bash recipes/frey-vae.sh (about 1 h on 2 CPU cores).
set -euo pipefail
DATA=${DATA:-data/frey_faces.npz}
RUNS=${RUNS:-runs}
MODELS=${MODELS:-exported_models}
TOY_DATA=synthetic:240:1x28x20

latentgen-train vae --data $DATA --out $RUNS/frey-vae-2 --epochs 1000 --batch-size 100 --lr 1e-3 \
    --warmup-steps 100 --likelihood gaussian --latent-dim 2 --hidden 200
latentgen-train evaluate --vae $RUNS/frey-vae-2/best.pt --data $DATA --out $RUNS/frey-vae-2/evaluation.json

latentgen-train vae --data $DATA --out $RUNS/frey-vae-5 --epochs 1000 --batch-size 100 --lr 1e-3 \
    --warmup-steps 100 --likelihood gaussian --latent-dim 5 --hidden 200
latentgen-train evaluate --vae $RUNS/frey-vae-5/best.pt --data $DATA --out $RUNS/frey-vae-5/evaluation.json

latentgen-train vae --data $DATA --out $RUNS/frey-vae-10 --epochs 1000 --batch-size 100 --lr 1e-3 \
    --warmup-steps 100 --likelihood gaussian --latent-dim 10 --hidden 200
latentgen-train evaluate --vae $RUNS/frey-vae-10/best.pt --data $DATA --out $RUNS/frey-vae-10/evaluation.json

latentgen-train vae --data $DATA --out $RUNS/frey-vae-20 --epochs 1000 --batch-size 100 --lr 1e-3 \
    --warmup-steps 100 --likelihood gaussian --latent-dim 20 --hidden 200
latentgen-train evaluate --vae $RUNS/frey-vae-20/best.pt --data $DATA --out $RUNS/frey-vae-20/evaluation.json

latentgen-train export --vae $RUNS/frey-vae-2/best.pt --data $DATA --evaluation $RUNS/frey-vae-2/evaluation.json \
    --out $MODELS --id frey-vae --hardware "2-core AMD EPYC CPU (no GPU)" \
    --description "Kingma & Welling's Frey Face MLP VAE: one tanh layer of 200, 2-D latent, Gaussian decoder with a learned per-pixel scale"
