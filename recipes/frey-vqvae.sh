#!/usr/bin/env bash
# frey-vqvae: a VQ-VAE (28x20 faces -> 7x5 codes, K = 512, D = 64) and an unconditional gated PixelCNN prior on the
# Frey faces. Only 1,573 training frames: the autoencoder sees half of each batch moved (rotated, zoomed, shifted)
# and half mirrored, the prior half of each batch's faces moved and encoded afresh (with a bias for those rows that
# sampling leaves out). Model card: docs/models/frey-vqvae.md. Run: bash recipes/frey-vqvae.sh (about 40 min on 2
# CPU cores).
set -euo pipefail
DATA=${DATA:-data/frey_faces.npz}
RUNS=${RUNS:-runs}
MODELS=${MODELS:-exported_models}
TOY_DATA=synthetic:240:1x28x20

latentgen-train vqvae --data $DATA --out $RUNS/frey-vqvae --epochs 400 --batch-size 64 --lr 1e-3 --warmup-steps 200 \
    --hidden 128 --residual-hidden 64 --num-codes 512 --code-dim 64 --augment 0.5 --hflip
latentgen-train prior --data $DATA --vqvae $RUNS/frey-vqvae/best.pt --out $RUNS/frey-prior --epochs 60 --batch-size 64 \
    --lr 1e-3 --warmup-steps 100 --kernel 3 --head-hidden 256 --channels 96 --layers 8 --dropout 0.5 \
    --weight-decay 0.05 --augment 0.5
latentgen-train evaluate --data $DATA --vqvae $RUNS/frey-vqvae/best.pt --prior $RUNS/frey-prior/best.pt \
    --out $RUNS/frey-vqvae-evaluation.json
latentgen-train export --vqvae $RUNS/frey-vqvae/best.pt --prior $RUNS/frey-prior/best.pt --data $DATA \
    --evaluation $RUNS/frey-vqvae-evaluation.json --out $MODELS --id frey-vqvae --hardware "2-core AMD EPYC CPU (no GPU)" \
    --description "VQ-VAE (7x5 codes, K=512, D=64; trained with half of each batch moved and half mirrored) and an unconditional gated PixelCNN prior (8 layers, 96 channels, trained on moved faces' codes too) on the Frey faces"
