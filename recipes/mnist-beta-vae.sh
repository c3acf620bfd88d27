#!/usr/bin/env bash
# mnist-beta-vae: Higgins et al. 2017's beta-VAE on MNIST, Kingma & Welling's MLP (one tanh layer of 500) with a
# 10-D latent. Version 1 is the beta = 1 twin, version 2 (served by default) has beta = 4: the same net, so their
# traversals differ only by the KL weight. Model card: docs/models/mnist-beta-vae.md.
# Run: bash recipes/mnist-beta-vae.sh (about 30 min on 2 CPU cores, evaluations included).
set -euo pipefail
DATA=${DATA:-data/mnist.npz}
RUNS=${RUNS:-runs}
MODELS=${MODELS:-exported_models}
TOY_DATA=synthetic:240

latentgen-train vae --data $DATA --out $RUNS/mnist-beta-1 --latent-dim 10 --beta 1 --epochs 30 --batch-size 100 \
    --warmup-steps 200
latentgen-train evaluate --vae $RUNS/mnist-beta-1/best.pt --data $DATA --importance-samples 500 \
    --out $RUNS/mnist-beta-1/evaluation.json
latentgen-train export --vae $RUNS/mnist-beta-1/best.pt --data $DATA --evaluation $RUNS/mnist-beta-1/evaluation.json \
    --out $MODELS --id mnist-beta-vae --version 1 --hardware "2-core AMD EPYC CPU (no GPU)" \
    --description "The beta = 1 twin of the beta-VAE: Kingma & Welling's MLP VAE (one tanh layer of 500), 10-D latent, Bernoulli pixels; MNIST"
latentgen-train vae --data $DATA --out $RUNS/mnist-beta-4 --latent-dim 10 --beta 4 --epochs 30 --batch-size 100 \
    --warmup-steps 200
latentgen-train evaluate --vae $RUNS/mnist-beta-4/best.pt --data $DATA --importance-samples 500 \
    --out $RUNS/mnist-beta-4/evaluation.json
latentgen-train export --vae $RUNS/mnist-beta-4/best.pt --data $DATA --evaluation $RUNS/mnist-beta-4/evaluation.json \
    --out $MODELS --id mnist-beta-vae --version 2 --hardware "2-core AMD EPYC CPU (no GPU)" \
    --description "beta-VAE (beta = 4): Kingma & Welling's MLP VAE (one tanh layer of 500), 10-D latent, Bernoulli pixels; MNIST"
