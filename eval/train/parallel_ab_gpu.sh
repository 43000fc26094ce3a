#!/usr/bin/env bash
# Does running the FLOPS sweep's lambda_d runs at once on one GPU (flops_sweep_gpu.sh train, PARALLEL) save device
# time against running them in turn? One device call: the sweep's training command on one folder (DATA, a prepared
# training folder carried with the call), STEPS steps per run without dev evaluations, three lambda_d; a short
# warm-up run first (model files into the page cache, CUDA's first-use costs), then the three in turn, then the
# three at once; wall seconds of each phase, steps/s from each run's log, and the GPU's memory every 2 s. Files
# for $OUT.
#
#   bash eval/train/parallel_ab_gpu.sh .carry/ab25/data-nfcorpus 200    # wheels in .carry/ab25/wheels
set -uo pipefail
data=$1 steps=${2:-200}  # BATCH (train_long): smaller for a CPU trial run
source "$(dirname "$0")/gpu_env.sh"
# WHEELS: a folder of the wheels the GPU image lacks (download_wheels; lsr train imports ir_measures)
mkdir -p /tmp/site /tmp/ab && install_wheels "${WHEELS:-$data/../wheels}" && stage_package || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -l 2 > "$OUT/gpu-memory.csv" &
monitor=$!
train() {  # train LAMBDA NAME STEPS: the sweep's settings (flops_sweep_gpu.sh) on one folder, no dev splits
  train_long "$1" "/tmp/ab/$2" "$3" --data "$data" --save-every "$3" > "/tmp/ab/$2.out" 2>&1
  echo "exit $?" >> "/tmp/ab/$2.out"  # a run killed for memory says so here
  cp "/tmp/ab/$2/log.jsonl" "$OUT/$2-log.jsonl"
}
phase() {  # phase NAME SECONDS: one line of the result
  echo "$1: $2 s" | tee -a "$OUT/ab.txt"
}
train 1e-3 warm-up "${WARMUP:-20}"
start=$(date +%s.%N)
for lambda in 3e-4 1e-3 3e-3; do train "$lambda" "in-turn-$lambda" "$steps"; done
phase "three runs in turn, $steps steps each" "$(python3 -c "import time; print(round(time.time() - $start, 1))")"
start=$(date +%s.%N) pids=()
for lambda in 3e-4 1e-3 3e-3; do train "$lambda" "at-once-$lambda" "$steps" & pids+=($!); done
wait "${pids[@]}"
phase "three runs at once, $steps steps each" "$(python3 -c "import time; print(round(time.time() - $start, 1))")"
kill "$monitor"
tail -n 3 /tmp/ab/*.out > "$OUT/outputs.txt"
