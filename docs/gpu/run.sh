#!/usr/bin/env bash
# The GPU measurements, on a machine with one CUDA GPU and a python3 that has torch for it (and no
# network): the denoiser engine's benchmark (docs/engine/gpu/) and the video DiT continued on the GPU
# from the shipped weights (training/train_video.py). Everything lands in OUT_DIR: log.txt, engine/
# (the benchmark's results and plots) and model/ (the new DiT, its config and the training log, to be
# evaluated on a CPU with `python -m training.evaluate_video --weights ...` before it replaces anything).
#
# Prepare on a machine with the project's virtualenv, then copy .gpu and var/compact_minilm along:
#   python -m services.denoiser.bench --save-prompts .gpu/prompts.npz     # prompts encoded by MiniLM
#   python -m training.compact_encoder export var/compact_minilm          # the encoder, cut to the world
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#     -d .gpu/wheels pydantic pydantic_core annotated-types typing-inspection typing_extensions \
#     grpcio grpcio-status googleapis-common-protos protobuf     # the versions in the virtualenv
#
#   STEPS="bench train" docs/gpu/run.sh OUT_DIR [TOTAL_SECONDS]
#
# With both steps the training set renders on the CPU cores, at low priority, while the benchmark runs;
# the DiT then trains for what is left of TOTAL_SECONDS.
set -u
OUT=${1:?usage: docs/gpu/run.sh OUT_DIR [TOTAL_SECONDS]}
TOTAL=${2:-560}
STEPS=${STEPS:-bench train}
DEVICE=${DEVICE:-cuda}
CLIPS=${CLIPS:-20000}
WORKERS=${WORKERS:-$(($(nproc) - 1))}
BATCH=${BATCH:-256}
LR=${LR:-1e-3}
WORK=${WORK:-/tmp/kino-train}
ENCODER=${ENCODER:-var/compact_minilm}
mkdir -p "$OUT/engine" "$OUT/model" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/gen${PYTHONPATH:+:$PYTHONPATH}
LOG=$OUT/log.txt
TRAIN=(--init-from services/denoiser/weights --dataset-clips "$CLIPS" --device "$DEVICE" --text-encoder "$ENCODER"
  --work-dir "$WORK" --threads 4 --batch-size "$BATCH" --lr "$LR" --out "$WORK/out")
has() { [[ " $STEPS " == *" $1 "* ]]; }

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  echo "cpus $(nproc)"
} >"$LOG"
# Fails fast, before any long step, when torch sees no GPU or the encoder export does not load.
python3 -c "
import torch; from training.compact_encoder import CompactEncoder
print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')
print('encoder', CompactEncoder('$ENCODER').encode(['a red ball bouncing on the floor'])[0].tokens.shape)
" >>"$LOG" 2>&1 || { cat "$LOG"; exit 1; }

if has bench; then
  if [[ -d .gpu/wheels ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .gpu/wheels/*.whl >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/site:$PYTHONPATH
  fi
  if has train; then
    nice -n 19 python3 -m training.train_video --dataset-only --workers "$((WORKERS * 2 / 3))" "${TRAIN[@]}" \
      >"$OUT/model/train.log" 2>&1 &
  fi
  echo "== engine benchmark ($DEVICE)" >>"$LOG"
  timeout 300 python3 -m services.denoiser.bench --gpu --device "$DEVICE" --prompts .gpu/prompts.npz \
    --report "$OUT/engine" >>"$LOG" 2>&1
  echo "bench exit $? at ${SECONDS}s" >>"$LOG"
  wait
fi

if has train; then
  if has bench; then  # the dataset is built: the DiT gets what is left
    BUDGET=(--dit-minutes "$(python3 -c "print(($TOTAL - $SECONDS - 40) / 60)")")
  else  # one run: the dataset's build counts against the budget
    BUDGET=(--minutes "$(python3 -c "print(($TOTAL - $SECONDS - 10) / 60)")")
  fi
  echo "== DiT training: ${BUDGET[*]}" >>"$LOG"
  python3 -m training.train_video "${BUDGET[@]}" --workers "$WORKERS" "${TRAIN[@]}" >>"$OUT/model/train.log" 2>&1
  echo "training exit $? at ${SECONDS}s" >>"$LOG"
  cp "$WORK/out/dit.safetensors" "$WORK/out/config.json" "$OUT/model/" 2>>"$LOG"
fi

grep -v "it/s\]\|s/s\]" "$LOG" | tail -60
[[ -f $OUT/model/train.log ]] && tr '\r' '\n' <"$OUT/model/train.log" | grep "dit step\|dit:\|wrote\|dataset\|rror" | tail -25
exit 0
