#!/usr/bin/env bash
# MovieLens-100k (fold u1: 80,000 train / 20,000 test ratings, every rating a positive) for the four
# backbones, dense and DSL at densities 0.5 and 0.2, plus the DSL ablations on LightGCN at 0.2; on CPU.
#   bash eval/recsys/ml100k_cpu.sh [OUT]   (default runs/recsys/ml-100k; ~12 min on machine A)
# REGROW (default gradient, the paper's rule) sets the DSL rows' regrowth; the ablation rows name theirs.
# One thread: on a shared 2-core machine a second OpenMP thread only adds contention to these small models.
set -euo pipefail
OUT=${1:-runs/recsys/ml-100k}
DATA=${DATA:-../shared/data/recsys/ml-100k}
REGROW=${REGROW:-gradient}
export OMP_NUM_THREADS=1
run() { python -m lsr.recommend train --data "$DATA" --epochs 50 --lr 0.005 --eval-every 10 "$@"; }
for model in mf lightgcn neumf multvae; do
  run --model "$model" --output-dir "$OUT/$model-dense"
  # MultVAE takes 2 batches of 500 users an epoch, 100 steps in all: ΔT 10 gives it 9 mask updates
  every=$([ "$model" = multvae ] && echo 10 || echo 100)
  for density in 0.5 0.2; do
    run --model "$model" --density "$density" --regrow "$REGROW" --update-every "$every" \
      --output-dir "$OUT/$model-dsl$density"
  done
done
run --model lightgcn --density 0.2 --regrow accumulated --output-dir "$OUT/lightgcn-dsl0.2-accumulated"
run --model lightgcn --density 0.2 --regrow momentum --output-dir "$OUT/lightgcn-dsl0.2-momentum"
run --model lightgcn --density 0.2 --regrow random --output-dir "$OUT/lightgcn-dsl0.2-random"
run --model lightgcn --density 0.2 --static-mask --output-dir "$OUT/lightgcn-dsl0.2-static"
python -m lsr.eval.recsys.table "$OUT"/*/
