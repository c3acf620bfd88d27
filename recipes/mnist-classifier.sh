#!/usr/bin/env bash
# The MNIST classifier that scores samples (training/weights/mnist-classifier.pt, 98.97% test accuracy): two conv
# layers with max-pooling, dropout, two dense layers. Run: bash recipes/mnist-classifier.sh (a few minutes), then
# copy $RUNS/classifier/best.pt to training/weights/mnist-classifier.pt.
set -euo pipefail
DATA=${DATA:-data/mnist.npz}
RUNS=${RUNS:-runs}
TOY_DATA=synthetic:240

latentgen-train classifier --data $DATA --out $RUNS/classifier --epochs 6 --warmup-steps 100
