#!/usr/bin/env bash
# One prepared run on a remote GPU machine reached by a tool that runs one command on a copy of the checkout, with
# limits: about 15 minutes of GPU time in all, 10 per command, 64 MiB sent and 8 files of 16 MiB back per command.
# Its python3 has torch with CUDA, tqdm, numpy and Pillow, but no pydantic or FastAPI: every `python -m training`
# command but export runs there.
#
# Before the call, here (gpu/ is ignored: add the line /gpu/ to .git/info/exclude):
#   mkdir -p gpu && cp data/mnist.npz gpu/
#   python -m training.export.readback exported_models/mnist-vqvae/6 gpu/vqvae.pt --prior gpu/prior.pt
# The call sends the checkout's tracked files and the carried ones, 64 MiB at most, and the bundled packages
# alone are more (mnist-vqvae is 79 MB); none is needed there, so call from a throwaway branch without them:
#   git switch -c gpu-call && git rm -rq exported_models && git commit -qm "gpu call: no packages"
#   then run `bash tools/gpu.sh` there, carrying gpu/, with a 600 s limit
#   git switch main && git branch -D gpu-call
# After it, with the files it brought back under FILES:
#   python -m tools.shards join FILES/prior-gpu runs/prior-gpu/best.pt   # then export here, on the CPU
#
# Stages, in order (STAGES, default "sampler prior"), each under its own time limit so that one running long
# leaves the next its time; the defaults' limits add up to under 9 minutes, inside the call's 10:
#   sampler  bench.sampling_torch on the GPU: forward pass, naive and cached sampling (issue: fast sampling)
#   prior    a wider PixelCNN prior on the carried VQ-VAE's codes, guided by the carried prior (guided_codes.py),
#            evaluated there (Inception Score and all)
#   vae      the ResNet VAE, evaluated there (NLL with k = 5000)
#   cifar    CIFAR-10 at a larger size than the CPU allows: a VQ-VAE of 256 channels with 4 residual blocks and
#            K = 1024 (8x8 codes), evaluated there; needs gpu/cifar10.npz, which is larger than one call carries:
#            cut it with `split -b 60M data/cifar10.npz gpu/cifar10.npz.part-` and carry the parts over back-to-back
#            calls (`cat gpu/cifar10.npz.part-* > gpu/cifar10.npz` on the machine; it keeps files about 30 s)
# Everything printed goes to $OUT/log.txt; trained weights come back as parts of at most 15 MiB (training/shards.py),
# at most 8 files in all.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu-out}
DEVICE=${DEVICE:-cuda}
STAGES=${STAGES:-sampler prior}
PRIOR_CHANNELS=${PRIOR_CHANNELS:-256}
PRIOR_DROPOUT=${PRIOR_DROPOUT:-0.3}  # 0.2 overfits at 192 channels already (docs/experiments)
PRIOR_GUIDE_WEIGHT=${PRIOR_GUIDE_WEIGHT:-0.3}  # 0: the encoder's codes; else chosen with gpu/prior.pt's rate (docs/training.md)
PRIOR_AUGMENT=${PRIOR_AUGMENT:-0}  # share of moved digits per batch (prior --augment); only without a guide
PRIOR_EPOCHS=${PRIOR_EPOCHS:-40}
PRIOR_MINUTES=${PRIOR_MINUTES:-5}
VAE_EPOCHS=${VAE_EPOCHS:-200}
VAE_MINUTES=${VAE_MINUTES:-4}
CIFAR_EPOCHS=${CIFAR_EPOCHS:-60}
CIFAR_MINUTES=${CIFAR_MINUTES:-5}
EVALUATE_MINUTES=${EVALUATE_MINUTES:-2}
RUNS=${RUNS:-/tmp/gpu-runs}
mkdir -p "$OUT" "$RUNS"
exec > >(tee -a "$OUT/log.txt") 2>&1

say() { echo "== $(date -u +%H:%M:%S) $*"; }
# Trainers save best.pt after every epoch, so a stage stopped by its limit still leaves its best model so far.
limited() { local minutes=$1; shift; timeout --signal=INT --kill-after=20 "${minutes}m" "$@"; echo "exit $?: $*"; }

say "machine"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

for stage in $STAGES; do
  case $stage in
    sampler)
      say "sampler timing on $DEVICE"
      limited 1.5 python3 -m bench.sampling_torch --device "$DEVICE"
      ;;
    prior)
      say "prior: $PRIOR_CHANNELS channels, dropout $PRIOR_DROPOUT, guide weight $PRIOR_GUIDE_WEIGHT," \
        "augment $PRIOR_AUGMENT, $PRIOR_EPOCHS epochs, at most $PRIOR_MINUTES min"
      guide=()
      [ "$PRIOR_GUIDE_WEIGHT" = 0 ] || guide=(--guide gpu/prior.pt --guide-weight "$PRIOR_GUIDE_WEIGHT")
      limited "$PRIOR_MINUTES" python3 -m training prior --data gpu/mnist.npz --vqvae gpu/vqvae.pt \
        --out "$RUNS/prior-gpu" --device "$DEVICE" --channels "$PRIOR_CHANNELS" --layers 12 --kernel 3 \
        --head-hidden 512 --dropout "$PRIOR_DROPOUT" --augment "$PRIOR_AUGMENT" "${guide[@]}" --bf16 \
        --epochs "$PRIOR_EPOCHS"
      [ -f "$RUNS/prior-gpu/best.pt" ] || { echo "no prior checkpoint: not one epoch finished"; continue; }
      cat "$RUNS/prior-gpu/metrics.jsonl"
      limited "$EVALUATE_MINUTES" python3 -m training evaluate --data gpu/mnist.npz --vqvae gpu/vqvae.pt \
        --prior "$RUNS/prior-gpu/best.pt" --classifier training/weights/mnist-classifier.pt --device "$DEVICE" \
        --out "$OUT/prior-evaluation.json"
      python3 -m tools.shards split "$RUNS/prior-gpu/best.pt" "$OUT/prior-gpu" --half
      ;;
    vae)
      say "ResNet VAE: $VAE_EPOCHS epochs, at most $VAE_MINUTES min"
      limited "$VAE_MINUTES" python3 -m training vae --data gpu/mnist.npz --out "$RUNS/vae-gpu" --device "$DEVICE" \
        --architecture resnet --channels 64 --residual-blocks 2 --latent-dim 32 --epochs "$VAE_EPOCHS" \
        --batch-size 128 --warmup-steps 200
      [ -f "$RUNS/vae-gpu/best.pt" ] || { echo "no VAE checkpoint: not one epoch finished"; continue; }
      limited "$EVALUATE_MINUTES" python3 -m training evaluate --vae "$RUNS/vae-gpu/best.pt" --data gpu/mnist.npz \
        --device "$DEVICE" --out "$OUT/vae-evaluation.json"
      python3 -m tools.shards split "$RUNS/vae-gpu/best.pt" "$OUT/vae-gpu"
      ;;
    cifar)
      [ -f gpu/cifar10.npz ] || cat gpu/cifar10.npz.part-* > gpu/cifar10.npz 2>/dev/null \
        || { echo "no gpu/cifar10.npz (nor its parts): skipped"; continue; }
      say "CIFAR-10 VQ-VAE: 256 channels, 4 residual blocks, K = 1024, $CIFAR_EPOCHS epochs, at most $CIFAR_MINUTES min"
      limited "$CIFAR_MINUTES" python3 -m training vqvae --data gpu/cifar10.npz --out "$RUNS/cifar-gpu" \
        --device "$DEVICE" --hidden 256 --residual-hidden 128 --residual-blocks 4 --num-codes 1024 --code-dim 64 \
        --epochs "$CIFAR_EPOCHS" --batch-size 256 --lr 2e-3 --warmup-steps 500 --bf16
      [ -f "$RUNS/cifar-gpu/best.pt" ] || { echo "no CIFAR checkpoint: not one epoch finished"; continue; }
      cat "$RUNS/cifar-gpu/metrics.jsonl"
      python3 -m tools.shards split "$RUNS/cifar-gpu/best.pt" "$OUT/cifar-gpu"
      ;;
    *) echo "unknown stage $stage" ;;
  esac
done
say "done"
ls -la "$OUT"
