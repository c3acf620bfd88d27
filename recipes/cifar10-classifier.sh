#!/usr/bin/env bash
# The CIFAR-10 classifier that scores cifar10-vqvae's samples (training/weights/cifar10-classifier.pt): three conv
# layers (32, 64, 128 channels) with max-pooling, dropout, two dense layers (256 hidden), half of each batch
# mirrored; its penultimate layer gives the features of the Fréchet distance and KID. Its test accuracy is stored
# in the checkpoint (and in the model card). Run: bash recipes/cifar10-classifier.sh (about 20 min on 2 CPU
# cores), then copy $RUNS/cifar10-classifier/best.pt to training/weights/cifar10-classifier.pt.
set -euo pipefail
DATA=${DATA:-data/cifar10.npz}
RUNS=${RUNS:-runs}
TOY_DATA=synthetic:240:3x32x32

latentgen-train classifier --data $DATA --val-size 5000 --out $RUNS/cifar10-classifier --epochs 8 --batch-size 128 \
    --lr 2e-3 --warmup-steps 200 --hflip --blocks 3 --channels 32 --hidden 256 --dropout 0.25
