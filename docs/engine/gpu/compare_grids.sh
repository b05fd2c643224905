#!/usr/bin/env bash
# The engine's GPU bench three ways on one machine, one after the other: the shipped rule (a step costs
# one DiT call per token grid among its rows), the earlier rule (`--scheduler calls_per_grid=false`),
# and the same model keeping one grid (no step is ever split). Run from the repository root on a
# machine with one CUDA GPU, after preparing .gpu/ as docs/gpu/run.sh's header says (prompts.npz and
# the wheels); OUT is where the three reports go (about six minutes on an H200).
#
#   OUT=/tmp/grids docs/engine/gpu/compare_grids.sh
set -u
OUT=${OUT:?set OUT to a directory}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/gen
if [[ -d .gpu/wheels ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/wheels/*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1
ONE_GRID=$(mktemp -d)
cp -r services/denoiser/weights/. "$ONE_GRID"
python3 - "$ONE_GRID/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["alternate_token_grid"] = config["alternate_space_grid"] = False
json.dump(config, open(sys.argv[1], "w"), indent=2)
PY
BENCH=(python3 -m services.denoiser.bench --gpu --device cuda --prompts .gpu/prompts.npz)
echo "== a step costs one DiT call per grid (the default)"
timeout 200 "${BENCH[@]}" --report "$OUT/engine"
echo "== a step is planned as one call (calls_per_grid=false)"
timeout 200 "${BENCH[@]}" --scheduler calls_per_grid=false --report "$OUT/calls_per_grid_off"
echo "== the model on one grid"
timeout 200 "${BENCH[@]}" --weights "$ONE_GRID" --report "$OUT/one_grid"
