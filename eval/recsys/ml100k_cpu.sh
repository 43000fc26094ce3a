#!/usr/bin/env bash
# MovieLens-100k (fold u1: 80,000 train / 20,000 test ratings, every rating a positive) for the four
# backbones, dense and DSL at densities 0.5 and 0.2, plus the DSL ablations on LightGCN at 0.2; on CPU.
#   bash eval/recsys/ml100k_cpu.sh [OUT]   (default runs/recsys/ml-100k; ~12 min on machine A)
# One thread: on a shared 2-core machine a second OpenMP thread only adds contention to these small models.
set -euo pipefail
OUT=${1:-runs/recsys/ml-100k}
DATA=${DATA:-../shared/data/recsys/ml-100k}
export OMP_NUM_THREADS=1
run() { python -m lsr.recommend train --data "$DATA" --epochs 50 --lr 0.005 --eval-every 10 "$@"; }
for model in mf lightgcn neumf multvae; do
  run --model "$model" --output-dir "$OUT/$model-dense"
  for density in 0.5 0.2; do
    run --model "$model" --density "$density" --output-dir "$OUT/$model-dsl$density"
  done
done
run --model lightgcn --density 0.2 --regrow momentum --output-dir "$OUT/lightgcn-dsl0.2-momentum"
run --model lightgcn --density 0.2 --regrow random --output-dir "$OUT/lightgcn-dsl0.2-random"
run --model lightgcn --density 0.2 --static-mask --output-dir "$OUT/lightgcn-dsl0.2-static"
python -m eval.recsys.table "$OUT"/*/
