#!/usr/bin/env bash
# Mistral-SPLADE LoRA training step at 7B scale (random weights, bf16), on the device machine from the repository root:
#   bash eval/bench/train_step_gpu.sh
# One process builds the 7B model once and measures batch sizes 8/16/32/64 (queries of 32 tokens, documents of
# 256, both echoed) with activation checkpointing, then without; a configuration that runs out of memory is
# recorded and the larger ones of that setting are skipped. Expected wall time: 2-4 minutes on an H100.
# Results: $OUT/train-step-7b.json (and the GPU's name in $OUT/gpu.csv).
set -uo pipefail
OUT=${OUT:-/tmp/lsr-bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # fewer fragmentation failures across sweep configurations
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"
python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.get_device_name())"
timeout 540 python3 -m lsr.eval.bench.train_step --preset 7b --device cuda --sweep 8,16,32,64 --query-length 32 \
  --doc-length 256 --steps 5 --warmup-steps 2 --compare-checkpointing --output "$OUT/train-step-7b.json"
