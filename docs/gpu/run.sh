#!/usr/bin/env bash
# The GPU measurements in one run, on a machine with one CUDA GPU and a python3 that has torch for it:
#   1. the denoiser engine's benchmark on the GPU (services/denoiser/bench.py, docs/engine/gpu/);
#   2. the video DiT continued on the GPU from the shipped weights (training/train_video.py).
# The training set renders on the CPU cores (at low priority) while the benchmark runs; the DiT then
# trains for what is left of TOTAL_SECONDS. Everything lands in OUT_DIR: log.txt, engine/ (the
# benchmark's results and plots) and model/ (the new DiT and its config, to be evaluated on the CPU
# with `python -m training.evaluate_video --weights ...` before it replaces anything).
#
#   python -m training.compact_encoder export var/compact_minilm   # first, where the encoder package is
#   docs/gpu/run.sh OUT_DIR [TOTAL_SECONDS]
#
# DEVICE=cpu CLIPS=256 BENCH_ARGS="..." runs the same steps on a CPU, small, to check the script.
set -u
OUT=${1:?usage: docs/gpu/run.sh OUT_DIR [TOTAL_SECONDS]}
TOTAL=${2:-560}
DEVICE=${DEVICE:-cuda}
CLIPS=${CLIPS:-20000}
WORKERS=${WORKERS:-10}
BATCH=${BATCH:-256}
LR=${LR:-1e-3}
BENCH_ARGS=${BENCH_ARGS:---gpu}
WORK=${WORK:-/tmp/kino-train}
ENCODER=${ENCODER:-var/compact_minilm}
mkdir -p "$OUT/engine" "$OUT/model" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/gen${PYTHONPATH:+:$PYTHONPATH}
LOG=$OUT/log.txt
TRAIN=(--init-from services/denoiser/weights --dataset-clips "$CLIPS" --device "$DEVICE" --text-encoder "$ENCODER"
  --work-dir "$WORK" --threads 4)

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1
  nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} >"$LOG" 2>&1

nice -n 19 python3 -m training.train_video --dataset-only --workers "$WORKERS" "${TRAIN[@]}" \
  >"$OUT/model/train.log" 2>&1 &
DATASET=$!

echo "== engine benchmark ($DEVICE)" >>"$LOG"
# shellcheck disable=SC2086
timeout 240 python3 -m services.denoiser.bench $BENCH_ARGS --device "$DEVICE" --report "$OUT/engine" >>"$LOG" 2>&1
echo "bench exit $? at ${SECONDS}s" >>"$LOG"

wait $DATASET
echo "dataset exit $? at ${SECONDS}s" >>"$LOG"
DIT_MINUTES=$(python3 -c "print(max(0.5, ($TOTAL - $SECONDS - 45) / 60))")
echo "== DiT training, $DIT_MINUTES minutes" >>"$LOG"
python3 -m training.train_video "${TRAIN[@]}" --batch-size "$BATCH" --lr "$LR" --dit-minutes "$DIT_MINUTES" \
  --out "$WORK/out" >>"$OUT/model/train.log" 2>&1
echo "training exit $? at ${SECONDS}s" >>"$LOG"
cp "$WORK/out/dit.safetensors" "$WORK/out/config.json" "$OUT/model/" 2>>"$LOG"

grep -v "it/s\]\|s/s\]" "$LOG" | tail -60
grep "dit step\|dit:\|wrote\|Error\|error" "$OUT/model/train.log" | tail -25
