#!/usr/bin/env bash
# Issue 23, a better shipped model: the shipped inference-free model trained further, at 512 tokens, on the SciFact
# and NFCorpus training folders of its recipe (eval/RESULTS.md, "Training") mixed with the packages corpus's
# label-free folder (pseudo-queries scored by BM25 + all-MiniLM-L6-v2), then measured on every split the shipped
# model's rows use. One device call carries at most 64 MiB with the repository, and a warm machine keeps /tmp
# between calls, so the work comes in phases:
#
#   pack DIR           (CPU machine) DIR/a: the packages corpus's columns, its training folder (cut to the
#                      documents its examples name: its corpus is a million documents) and the wheels; DIR/b: the
#                      SciFact and NFCorpus training folders and the BEIR queries and qrels the evaluation needs.
#   stage DIR          (GPU) DIR = the carried DIR/a: wheels installed, the rest kept in /tmp. DIR/a and the
#                      shipped model do not fit one call together: move the model's weights out of the checkout
#                      for this call (the stage needs no model).
#   train DIR MINUTES  (GPU) DIR = the carried DIR/b. `lsr train run` from the shipped model for MINUTES (resumed
#                      by the next call if cut short), its fp16 export in <=15 MB pieces, the starting and the new
#                      model on the training folders' dev splits (`lsr train evaluate`), and their runs on SciFact
#                      test and NFCorpus dev (`lsr eval run`). Files for $OUT.
#   packages           (GPU) the new model over all 1,038,337 package descriptions: encode, index, top-100 runs
#                      of the dev and test queries (lsr.eval.bench.packages_gpu). Files for $OUT.
set -uo pipefail
phase=$1
work=/tmp/s13
model=models/inference-free-minilm
if [ "$phase" = pack ]; then
  out=$2 data=${DATA:-runs/train} columns=${COLUMNS:-.carry/p23b} text=${TEXT:-.carry/p23a/text.xz}
  mkdir -p "$out/a/columns" "$out/b/beir" && cp "$columns"/*.whl "$out/a/" &&
    cp "$text" "$columns"/{title.xz,source.xz,queries.jsonl.gz,dev.tsv,test.tsv} "$out/a/columns/" || exit 1
  for name in scifact nfcorpus; do
    mkdir -p "$out/b/data-$name" "$out/b/beir/$name/qrels" && cp -r "$data/data-$name"/{corpus.jsonl.gz,examples.jsonl.gz,prepare.json,qrels,queries.jsonl} "$out/b/data-$name/" &&
      cp "../shared/data/beir/$name/queries.jsonl" "$out/b/beir/$name/" || exit 1
  done
  cp ../shared/data/beir/scifact/qrels/test.tsv "$out/b/beir/scifact/qrels/" &&
    cp ../shared/data/beir/nfcorpus/qrels/dev.tsv "$out/b/beir/nfcorpus/qrels/" || exit 1
  python3 - "$data/data-packages" "$out/a/data-packages" <<'PY' || exit 1
import gzip, json, shutil, sys
from pathlib import Path
source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
named = set()
with gzip.open(source / "examples.jsonl.gz", "rt", encoding="utf-8") as lines:
    for line in lines:
        example = json.loads(line)
        named.update(example["positives"], example["negatives"])
with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as lines, \
        gzip.open(target / "corpus.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as kept:
    kept.writelines(line for line in lines if json.loads(line)["_id"] in named)
for name in ("examples.jsonl.gz", "prepare.json", "queries.jsonl"):  # queries: the held-out pseudo-queries
    shutil.copy(source / name, target / name)
print(f"{len(named):,} documents named by the packages examples")
PY
  du -sh "$out"/a "$out"/b "$out"/b/*
  exit 0
fi
dir=${2:-}
source "$(dirname "$0")/gpu_env.sh"
export LSR_CACHE=$work/cache
mkdir -p "$work/columns"
exec > >(tee -a "$OUT/$phase.log") 2>&1
if [ "$phase" = stage ]; then
  install_wheels "$dir" && cp -r "$dir/columns" "$dir/data-packages" "$work/" && ls -la "$work/columns" && exit 0
  exit 1
fi
[ -d /tmp/site ] || { echo "this machine is a fresh one (no /tmp/site): run the stage phase first" >&2; exit 1; }
stage_package || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "$phase" = train ]; then
  minutes=$3
  [ -d "$work/data-scifact" ] || cp -r "$dir"/data-* "$dir/beir" "$work/" || exit 1
  for name in scifact nfcorpus; do
    ln -sf "$work/data-$name/corpus.jsonl.gz" "$work/beir/$name/corpus.jsonl.gz"
  done
  timed train_long 1e-3 "$work/mixed" "${STEPS:-6000}" --data "$work/data-scifact" --data "$work/data-nfcorpus" \
    --data "$work/data-packages" --dev "$work/data-scifact" --dev "$work/data-nfcorpus" --eval-every 500 \
    --save-every 500 --max-minutes "$minutes" --resume 2>&1 | grep -v "it/s\]"
  cp "$work/mixed/log.jsonl" "$OUT/mixed-log.jsonl"; cp "$work/mixed/training.png" "$OUT/mixed-training.png"
  [ -d "$work/mixed/model" ] || { echo "no kept model yet: run train again to continue" >&2; exit 1; }
  export_fp16 "$work/mixed/model" model-mixed "$work"
  for name in shipped mixed; do
    path=$model && [ "$name" = mixed ] && path=$work/mixed/model
    [ "$name" = shipped ] && [ -d "$work/runs/shipped-nfcorpus" ] && continue  # measured by an earlier call
    measure_model "$name" "$path" "$work" "$OUT"
  done
  tar -C "$work/runs" -cJf "$OUT/runs.tar.xz" .
  exit 0
fi
if [ "$phase" = packages ]; then
  timed python3 -P -m lsr.eval.bench.packages_gpu --model "$work/mixed/model" --name mixed --columns "$work/columns" \
    --work "$work/packages" --out "$OUT" --timing-queries 1000
  exit 0
fi
echo "unknown phase $phase" >&2
exit 2
