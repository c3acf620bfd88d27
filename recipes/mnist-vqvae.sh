#!/usr/bin/env bash
# mnist-vqvae, version 9: a VQ-VAE (7x7 codes, K = 512, D = 64) whose codes are chosen under a rate weight, and a
# class-conditional gated PixelCNN prior (12 layers, 192 channels) whose labels are optional: the weight average of
# a prior fine-tuned on codes guided by the previous prior and of that prior fine-tuned once more on codes guided
# by itself (version 5's prior), made class-conditional with label dropout on codes guided by itself (version 6's),
# then trained 2 epochs on the codes the encoder emits (version 9's; version 8 had the first), with sampling
# defaults chosen on validation samples.
# Model card: docs/models/mnist-vqvae.md. Run: bash recipes/mnist-vqvae.sh (about 9 h on 2 CPU cores).
set -euo pipefail
DATA=${DATA:-data/mnist.npz}
RUNS=${RUNS:-runs}
MODELS=${MODELS:-exported_models}
TOY_DATA=synthetic:240

# Stage 1: 30 epochs of the plain VQ-VAE, then 4 with the rate weight (entropy-constrained VQ).
latentgen-train vqvae --data $DATA --out $RUNS/vqvae --epochs 30 --bf16 --lr 2e-3
latentgen-train vqvae --data $DATA --out $RUNS/vqvae-ecvq --init $RUNS/vqvae/best.pt \
    --rate-weight 0.05 --epochs 4 --lr 5e-4 --warmup-steps 100 --bf16
# Stage 2: the prior on the encoder's codes (version 3's prior) ...
latentgen-train prior --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --out $RUNS/prior --epochs 9 --bf16 \
    --lr 1e-3 --warmup-steps 500 --batch-size 128 --channels 192 --layers 12 --kernel 3 --head-hidden 512 --dropout 0.2
# ... fine-tuned on codes guided by it (version 4's prior), then once more on codes guided by that ...
latentgen-train prior --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --init $RUNS/prior/best.pt \
    --guide $RUNS/prior/best.pt --guide-weight 0.3 --out $RUNS/prior-guided --epochs 3 --lr 3e-4 \
    --warmup-steps 200 --bf16 --batch-size 128 --channels 192 --layers 12 --kernel 3 --head-hidden 512 --dropout 0.2
latentgen-train prior --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --init $RUNS/prior-guided/best.pt \
    --guide $RUNS/prior-guided/best.pt --guide-weight 0.3 --out $RUNS/prior-guided-2 --epochs 3 --lr 3e-4 \
    --warmup-steps 200 --bf16 --batch-size 128 --channels 192 --layers 12 --kernel 3 --head-hidden 512 --dropout 0.2
# ... and the two rounds' weights averaged (a model soup).
latentgen-train average --kind prior --checkpoints $RUNS/prior-guided/best.pt,$RUNS/prior-guided-2/best.pt \
    --out $RUNS/prior-average.pt
# Stage 3: class biases added at zero, every weight fine-tuned on codes guided by the averaged prior, a tenth of the
# labels hidden ("no label"), so that labels are optional and classifier-free guidance has its unlabelled logits.
latentgen-train prior --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --init $RUNS/prior-average.pt \
    --guide $RUNS/prior-average.pt --guide-weight 0.3 --conditional --label-dropout 0.1 --out $RUNS/prior-conditional \
    --epochs 3 --lr 5e-4 --warmup-steps 200 --bf16 --batch-size 128 --channels 192 --layers 12 --kernel 3 \
    --head-hidden 512 --dropout 0.2
# Stage 4 (version 9): the conditional prior fine-tuned on exactly the codes the exported encoder emits (no guide),
# so that the package's encoder and prior agree on what codes look like. Version 8 was this run's best.pt after its
# first epoch (stopped there for time); version 9 is the run resumed (--resume) and finished.
latentgen-train prior --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --init $RUNS/prior-conditional/best.pt \
    --conditional --label-dropout 0.1 --out $RUNS/prior-encoder-codes --epochs 2 --lr 3e-4 --warmup-steps 200 \
    --batch-size 128 --channels 192 --layers 12 --kernel 3 --head-hidden 512 --dropout 0.2
# The sampling defaults, chosen on the validation split by the rule in the model card (docs/models/mnist-vqvae.md):
# 5,000 samples per setting from seeds 10000 on; then the test figures at those defaults (seeds 0 on), which
# export makes the package's defaults. The label accuracy floor is the 97% target plus a point, for the
# difference between the project's classifier and another judge's.
# Guidance at temperature 0.9, then temperatures 0.8 and 1 at w 0.25 (the first sweep's least distance) and
# w 0.75 (its least guidance that followed the label 97% of the time); the second sweep adds its rows.
latentgen-train sweep --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --prior $RUNS/prior-encoder-codes/best.pt \
    --classifier training/weights/mnist-classifier.pt --guidance 0,0.25,0.5,0.75,1 --temperature 0.9 \
    --min-label-accuracy 0.98 --min-inception-score 9.0 --samples 5000 --out $RUNS/sweep
latentgen-train sweep --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --prior $RUNS/prior-encoder-codes/best.pt \
    --classifier training/weights/mnist-classifier.pt --guidance 0.25,0.75 --temperature 0.8,1 \
    --min-label-accuracy 0.98 --min-inception-score 9.0 --samples 5000 --out $RUNS/sweep
latentgen-train evaluate --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --prior $RUNS/prior-encoder-codes/best.pt \
    --defaults $RUNS/sweep/sweep.json --classifier training/weights/mnist-classifier.pt --samples 5000 \
    --out $RUNS/mnist-vqvae-evaluation.json
latentgen-train export --data $DATA --vqvae $RUNS/vqvae-ecvq/best.pt --prior $RUNS/prior-encoder-codes/best.pt \
    --evaluation $RUNS/mnist-vqvae-evaluation.json --out $MODELS --id mnist-vqvae --version 9 \
    --hardware "2-core AMD EPYC CPU (no GPU)" --description "VQ-VAE (7x7 codes, K=512, D=64) with codes chosen under a rate weight of 0.05 (entropy-constrained VQ) and a class-conditional gated PixelCNN prior (12 layers, 192 channels; labels optional) trained on the codes its encoder emits; sampling defaults chosen on validation samples by distribution distance; MNIST"
