#!/usr/bin/env bash
# GPU encoding benchmarks, run on the device machine from the repository root:
#   bash eval/bench/gpu_encode.sh
# Inputs (not in git; copied beside the checkout and carried to the machine):
#   .carry/scifact-corpus.jsonl.gz  SciFact's corpus (../shared/data/beir/scifact/corpus.jsonl.gz)
#   .carry/tok/                     bert-base-uncased tokenizer files (from ../shared/models/splade-tiny)
#   .carry/whl, .carry/whl2         wheels of sentence-transformers 6.2.0 and, for an image with
#                                   transformers < 5, transformers 5.23.0 and its dependencies
set -uo pipefail
OUT=${OUT:-/tmp/lsr-bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if python3 -c "import sys, transformers; sys.exit(int(transformers.__version__.split('.')[0]) < 5)"; then
  wheels=(.carry/whl/sentence_transformers-*.whl .carry/whl/scikit_learn-*.whl .carry/whl/threadpoolctl-*.whl .carry/whl/joblib-*.whl)
else
  wheels=(.carry/whl/*.whl .carry/whl2/*.whl)
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${wheels[@]}" || exit 1
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import torch, transformers, sentence_transformers as st; print(torch.__version__, transformers.__version__, st.__version__, torch.cuda.get_device_name())"
corpus=.carry/scifact-corpus.jsonl.gz
python3 -m lsr.eval.bench.encode splade-random-base --model .carry/tok --corpus $corpus --docs 4000 --device cuda \
  --batch-size 64 --output "$OUT/splade-base-gpu-bf16.json"
python3 -m lsr.eval.bench.encode splade-random-base --model .carry/tok --corpus $corpus --docs 2000 --device cuda \
  --dtype fp32 --batch-size 64 --output "$OUT/splade-base-gpu-fp32.json"
python3 -m lsr.eval.bench.encode mistral-7b --model .carry/tok --corpus $corpus --docs 512 --batch-size 16 \
  --output "$OUT/mistral-splade-7b-gpu.json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"
