#!/usr/bin/env bash
# The video DiT continued from the shipped weights in several variants side by side on one GPU: the
# training set renders once (CLIPS clips drawn with SEED, so a seed other than the shipped model's
# gives it clips it has not seen), then one training process per variant shares the GPU for what is left
# of TOTAL_SECONDS. Each variant is a string of extra train_video arguments; its model lands in
# OUT_DIR/N/ (dit.safetensors, config.json, train.log), to be evaluated on a CPU with
# `python -m training.evaluate_video --weights ...` before it replaces anything.
#
# Prepare the text encoder as for docs/gpu/run.sh (python -m training.compact_encoder export
# var/compact_minilm) and copy it along, then:
#
#   docs/gpu/variants.sh OUT_DIR TOTAL_SECONDS "--lr 2e-4" "--lr 2e-4 --subject-loss-weight 3"
#
# Files that come back from a lent machine are limited in size; with PACK=DIR every variant's model is
# also packed into one tar split into 15 MB parts in DIR (unpack: cat DIR/models.tar.part-* | tar -xf -).
set -u
OUT=${1:?usage: docs/gpu/variants.sh OUT_DIR TOTAL_SECONDS VARIANT...}
TOTAL=${2:?usage: docs/gpu/variants.sh OUT_DIR TOTAL_SECONDS VARIANT...}
shift 2
(($# > 0)) || { echo "give at least one variant" >&2; exit 2; }
DEVICE=${DEVICE:-cuda}
CLIPS=${CLIPS:-40000}
SEED=${SEED:-1}
WORKERS=${WORKERS:-$(($(nproc) - 1))}
WORK=${WORK:-/tmp/kino-variants}
ENCODER=${ENCODER:-var/compact_minilm}
THREADS=${THREADS:-$((($(nproc) - 1) / $# > 0 ? ($(nproc) - 1) / $# : 1))}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/gen${PYTHONPATH:+:$PYTHONPATH}
COMMON=(--init-from services/denoiser/weights --dataset-clips "$CLIPS" --seed "$SEED" --device "$DEVICE"
  --text-encoder "$ENCODER" --batch-size 256)
mkdir -p "$OUT" "$WORK/data"
LOG=$OUT/log.txt
{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1
  echo "cpus $(nproc); variants: $*"
} >"$LOG"

python3 -m training.train_video --dataset-only --workers "$WORKERS" --threads 4 "${COMMON[@]}" \
  --work-dir "$WORK/data" >"$OUT/dataset.log" 2>&1 || { tail -20 "$OUT/dataset.log"; exit 1; }
echo "dataset built at ${SECONDS}s" >>"$LOG"

# What is left, less loading the dataset onto the GPU and writing the weights at the end.
MINUTES=$(python3 -c "print(max(0.5, ($TOTAL - $SECONDS - 40) / 60))")
i=0
for variant in "$@"; do
  i=$((i + 1))
  mkdir -p "$WORK/$i" "$OUT/$i"
  ln -sf "$WORK/data/dataset_$CLIPS.pt" "$WORK/$i/"
  # shellcheck disable=SC2086  # a variant is a list of arguments
  python3 -m training.train_video --dit-minutes "$MINUTES" --minutes "$MINUTES" --threads "$THREADS" \
    "${COMMON[@]}" --work-dir "$WORK/$i" --out "$WORK/$i/out" $variant >"$OUT/$i/train.log" 2>&1 &
done
wait
echo "training done at ${SECONDS}s" >>"$LOG"
for ((j = 1; j <= i; j++)); do
  cp "$WORK/$j/out/dit.safetensors" "$WORK/$j/out/config.json" "$OUT/$j/" 2>>"$LOG"
  echo "== variant $j: ${!j}" >>"$LOG"
  tr '\r' '\n' <"$OUT/$j/train.log" | grep "dit step\|dit:\|wrote\|rror" | tail -4 >>"$LOG"
done
if [[ -n ${PACK:-} ]]; then
  mkdir -p "$PACK"
  tar -C "$OUT" -cf - $(cd "$OUT" && ls -d [0-9]*/dit.safetensors [0-9]*/config.json) | split -b 15M - "$PACK/models.tar.part-"
  cp "$LOG" "$PACK/"
fi
cat "$LOG"
