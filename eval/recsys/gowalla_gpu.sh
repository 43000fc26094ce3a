#!/usr/bin/env bash
# Gowalla rows of eval/RESULTS.md on one GPU: LightGCN and MF-BPR, dense and DSL at densities 0.5 and 0.2,
# in LightGCN's setting (embedding 64, 3 layers, lr 0.001, batch 2048, L2 1e-4 on the batch's ego embeddings,
# one uniform negative per positive), full-ranking test metrics at the end.
#
#   OUT=/some/dir bash eval/recsys/gowalla_gpu.sh [ROW ...]
#
# ROWs: lightgcn-dense lightgcn-dsl0.5 lightgcn-dsl0.2 mf-dense mf-dsl0.5 mf-dsl0.2 (default: all six).
# Each row plans LGCN_EPOCHS (default 150) or MF_EPOCHS (default 300) epochs, estimated to fit ~200 s on an
# H100, and starts no new epoch after LIMIT seconds of training (default 200): a row takes about 3.5 minutes
# with loading and evaluation. metrics.json's "epochs" says how many ran ("planned_epochs": how many were
# planned); DSL's cosine schedule spans the planned epochs. Run two rows per command where commands are
# capped at 10 minutes. Published LightGCN numbers are after 1000 epochs: raise LGCN_EPOCHS, MF_EPOCHS and
# LIMIT together to get closer to them; LR and BATCH override the paper's 0.001 and 2048.
#
# Needs: Python 3.10+, torch with CUDA, numpy, scipy, and the CLI's pure-Python wheels typer, click, rich,
# shellingham, markdown_it_py, mdurl, pygments (tqdm, matplotlib and hnswlib are optional, not used here).
# DATA defaults to the shared Gowalla split beside the repository (train.txt.gz / test.txt.gz).
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
DATA=${DATA:-../shared/data/recsys/gowalla}
[ -d "$DATA" ] || DATA=shared/data/recsys/gowalla
LGCN_EPOCHS=${LGCN_EPOCHS:-150}
MF_EPOCHS=${MF_EPOCHS:-300}
LIMIT=${LIMIT:-200}
LR=${LR:-0.001}
BATCH=${BATCH:-2048}
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(lightgcn-dense lightgcn-dsl0.5 lightgcn-dsl0.2 mf-dense mf-dsl0.5 mf-dsl0.2)

python -c "import typer, rich, torch; assert torch.cuda.is_available(), 'no CUDA device'" || {
  echo "needs typer/rich wheels (typer click rich shellingham markdown_it_py mdurl pygments) and a CUDA torch" >&2
  exit 3
}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"
} > "$OUT/machine.txt"

for row in "${ROWS[@]}"; do
  model=${row%%-*}
  variant=${row#*-}
  epochs=$([ "$model" = lightgcn ] && echo "$LGCN_EPOCHS" || echo "$MF_EPOCHS")
  density=1.0
  [ "$variant" = dense ] || density=${variant#dsl}
  echo "== $row: $epochs epochs, density $density" >&2
  start=$SECONDS
  python -m lsr.recommend train --data "$DATA" --model "$model" \
    --density "$density" --epochs "$epochs" --device cuda --lr "$LR" --batch-size "$BATCH" --eval-every 10 --time-limit "$LIMIT" \
    --output-dir "$OUT/gowalla-$row" 2>&1 | tee "$OUT/gowalla-$row.log"
  echo "$row: $((SECONDS - start)) s wall" | tee -a "$OUT/gowalla-$row.log"
done
python -m eval.recsys.table "$OUT"/gowalla-*/ | tee "$OUT/table.md"
