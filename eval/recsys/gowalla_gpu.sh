#!/usr/bin/env bash
# Gowalla rows of eval/RESULTS.md on one GPU: LightGCN and MF-BPR, dense and DSL at densities 0.5 and 0.2,
# in LightGCN's setting (embedding 64, 3 layers, lr 0.001, batch 2048, L2 1e-4 on the batch's ego embeddings,
# one uniform negative per positive, 1000 epochs), full-ranking test metrics at the end. SAMPLER (default
# users: LightGCN's code, each epoch as many uniformly random users as training pairs, each with a random
# positive) or pairs (every training pair once per epoch); checkpoints written before --sampler existed were
# pairs runs, which --resume refuses to continue as users: finish those with SAMPLER=pairs.
#
#   OUT=/some/dir bash eval/recsys/gowalla_gpu.sh [ROW ...]
#
# ROWs: lightgcn-dense lightgcn-dsl0.5 lightgcn-dsl0.2 mf-dense mf-dsl0.5 mf-dsl0.2 (default: all six), each
# optionally followed by +OPTION=VALUE pairs passed on as `--OPTION VALUE` (+FLAG as `--FLAG`), overriding the
# defaults below (for ablations: lightgcn-dsl0.2+regrow=accumulated+pooled-budget trains in OUT/gowalla-THAT-NAME).
# Resumable, for device commands capped at 10 minutes: each row plans LGCN_EPOCHS or MF_EPOCHS (default 1000,
# ~21 minutes of LightGCN on an H100) and starts no new epoch after LIMIT seconds of training; it then writes
# its partial model (metrics.json: "epochs" run of "planned_epochs") and OUT/gowalla-ROW.checkpoint, also
# saved every CKPT_EVERY epochs (default 25) so a killed command loses at most that many. Rerunning the same
# command continues every row where it stopped (--resume), bit for bit, and skips finished rows; DSL's cosine
# schedule spans the planned epochs. EVAL_EVERY (default 50) adds test evaluations to each row's log.jsonl.
# PARALLEL=1 trains the rows as concurrent processes on the one GPU (small kernels: they share it well), so
# several rows advance in one command. LIMIT defaults to 480 s per command: all of it for each row with
# PARALLEL=1, an equal share for each row otherwise; loading and evaluation take the rest of the 10 minutes.
# Each row's output is appended to OUT/gowalla-ROW.log; the exit status is non-zero if any row failed.
# LR and BATCH override the paper's 0.001 and 2048; LR_MIN cosine-anneals the learning rate per epoch down to it
# (the DSL authors' LightGCN recipe: LR=0.01 LR_MIN=1e-4); UPDATE_EVERY sets DSL's ΔT in steps (default 100) and
# REGROW its regrowth rule (gradient, momentum, accumulated or random; default gradient).
#
# Needs: Python 3.10+, torch with CUDA, numpy, scipy, and the CLI's pure-Python wheels typer, click, rich,
# shellingham, markdown_it_py, mdurl, pygments (tqdm, matplotlib and hnswlib are optional, not used here).
# DATA defaults to the shared Gowalla split beside the repository (train.txt.gz / test.txt.gz).
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
DATA=${DATA:-../shared/data/recsys/gowalla}
[ -d "$DATA" ] || DATA=shared/data/recsys/gowalla
LGCN_EPOCHS=${LGCN_EPOCHS:-1000}
MF_EPOCHS=${MF_EPOCHS:-1000}
LR=${LR:-0.001}
BATCH=${BATCH:-2048}
LR_MIN=${LR_MIN:-}
UPDATE_EVERY=${UPDATE_EVERY:-100}
REGROW=${REGROW:-gradient}
SAMPLER=${SAMPLER:-users}
CKPT_EVERY=${CKPT_EVERY:-25}
EVAL_EVERY=${EVAL_EVERY:-50}
PARALLEL=${PARALLEL:-0}
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(lightgcn-dense lightgcn-dsl0.5 lightgcn-dsl0.2 mf-dense mf-dsl0.5 mf-dsl0.2)
if [ "$PARALLEL" = 1 ]; then LIMIT=${LIMIT:-480}; else LIMIT=${LIMIT:-$((480 / ${#ROWS[@]}))}; fi

python -c "import typer, rich, torch; assert torch.cuda.is_available(), 'no CUDA device'" || {
  echo "needs typer/rich wheels (typer click rich shellingham markdown_it_py mdurl pygments) and a CUDA torch" >&2
  exit 3
}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"
} > "$OUT/machine.txt"

# One command's share of a row: train (or continue) it, say how long the command took, return its status
# (explicitly: called after `||`, a function runs without set -e).
train_row() {
  local row=$1 base=${1%%+*} start=$SECONDS status=0
  local model=${base%%-*} variant=${base#*-} epochs density=1.0 pair pairs extra=()
  if [ "$base" != "$row" ]; then
    IFS=+ read -ra pairs <<< "${row#*+}"
    for pair in "${pairs[@]}"; do
      if [[ $pair == *=* ]]; then extra+=("--${pair%%=*}" "${pair#*=}"); else extra+=("--$pair"); fi
    done
  fi
  epochs=$([ "$model" = lightgcn ] && echo "$LGCN_EPOCHS" || echo "$MF_EPOCHS")
  [ "$variant" = dense ] || density=${variant#dsl}
  echo "== $row: $epochs epochs, density $density, sampler $SAMPLER, lr $LR${LR_MIN:+ to $LR_MIN}," \
    "${extra[*]:-no other options}, $(date -u +%FT%TZ)"
  python -m lsr.recommend train --data "$DATA" --model "$model" --density "$density" --epochs "$epochs" \
    --device cuda --lr "$LR" ${LR_MIN:+--lr-min "$LR_MIN"} --update-every "$UPDATE_EVERY" --regrow "$REGROW" \
    --batch-size "$BATCH" --sampler "$SAMPLER" --eval-every "$EVAL_EVERY" --time-limit "$LIMIT" \
    --checkpoint-every "$CKPT_EVERY" --resume "${extra[@]}" --output-dir "$OUT/gowalla-$row" || status=$?
  echo "$row: $((SECONDS - start)) s wall, exit status $status"
  return "$status"
}

failed=()
if [ "$PARALLEL" = 1 ]; then
  pids=()
  for row in "${ROWS[@]}"; do
    train_row "$row" >> "$OUT/gowalla-$row.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!ROWS[@]}"; do
    wait "${pids[$i]}" || failed+=("${ROWS[$i]}")
    tail -n 3 "$OUT/gowalla-${ROWS[$i]}.log"
  done
else
  for row in "${ROWS[@]}"; do
    train_row "$row" 2>&1 | tee -a "$OUT/gowalla-$row.log" || failed+=("$row")
  done
fi

shopt -s nullglob
trained=("$OUT"/gowalla-*/metrics.json)  # model folders, not the .checkpoint folders beside them
[ ${#trained[@]} -eq 0 ] || python -m lsr.eval.recsys.table "${trained[@]%/metrics.json}" | tee "$OUT/table.md"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]} (see $OUT/gowalla-ROW.log)" >&2
  exit 1
fi
