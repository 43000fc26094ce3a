#!/usr/bin/env bash
# Issue 23 on the packages corpus (1,038,337 documents): label-free adaptation with a BM25 teacher run on the CPU
# machine (Lucene needs Java) and a dense teacher, training and the before/after evaluation on the GPU machine. One
# device call carries at most 64 MiB with the repository and a warm machine keeps /tmp between calls, so the work
# comes in phases, each one call, in this order:
#
#   stage DIR   keep DIR's files in /tmp for the next phases, for what does not fit beside them in one call: the
#               corpus's largest column, text.xz (eval/bench/packages_gpu.py write_columns), or a large BM25 run.
#               The corpus is not needed when eval/bench/engines_gpu.sh ran on this warm machine: its copy is used.
#   teach DIR   DIR (or an earlier stage): the dense model (minilm/), bm25.trec.xz (`teachers/bm25.trec` of the
#               CPU machine's `lsr train prepare --teachers bm25` with the same sampling flags, so the same
#               queries), the wheels, and the other columns unless the corpus is already here. `lsr train prepare
#               --teachers run=BM25,dense=minilm`: the dense teacher searches the whole corpus, encoded on the GPU.
#               (The shipped model is left out of this call's tree to make room.)
#   adapt MINUTES SECONDS
#               `lsr train adapt --resume --max-minutes MINUTES` on the teach phase's folder, with its before/after
#               report on the dev and test qrels, the whole command stopped after SECONDS: a call cut short
#               continues where it stopped in the next `adapt` call. Files for $OUT.
#
# The dense baseline's runs do not depend on the pseudo-queries; session 12 made them (`lsr eval run --retriever
# dense --dense-model DIR/minilm --index exact --k 100`).
# Settings (environment; the CPU machine's BM25 prepare must use the same first three): PSEUDO_MAX_SHARE (default
# 1, prepare's --pseudo-max-share), MAX_QUERIES (default 8000, its --max-queries), SEED (default 0), STEPS
# (default 1000, adapt's --steps).
set -uo pipefail
phase=$1 dir=$2
source "$(dirname "$0")/gpu_env.sh"
export LSR_CACHE=/tmp/p23/cache
work=/tmp/p23 sample=(--pseudo-queries 3 --pseudo-holdout 200 --max-queries "${MAX_QUERIES:-8000}"
  --seed "${SEED:-0}" --pseudo-max-share "${PSEUDO_MAX_SHARE:-1}")  # as the CPU machine's BM25 prepare had them
beir=/tmp/b21/packages  # engines_gpu.sh's corpus, when it ran on this machine
[ -f "$beir/corpus.jsonl" ] || beir=$work/packages
mkdir -p "$work/columns" "$work/staged"
exec > >(tee -a "$OUT/$phase.log") 2>&1
if [ "$phase" = stage ]; then
  cp -r "$dir"/* "$work/staged/" && ls -la "$work/staged" && exit 0
fi
found() {  # found NAME: DIR/NAME, else the staged copy
  if [ -e "$dir/$1" ]; then echo "$dir/$1"; else echo "$work/staged/$1"; fi
}
if [ "$phase" = teach ] && [ ! -d /tmp/site ]; then
  install_wheels "$dir" || exit 1
elif [ ! -d /tmp/site ]; then
  echo "this machine is a fresh one (no /tmp/site): run the teach phase first" >&2 && exit 1
fi
stage_package || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "$phase" = teach ]; then
  if [ ! -f "$beir/corpus.jsonl" ]; then
    for name in source.xz title.xz text.xz queries.jsonl.gz dev.tsv test.tsv; do
      cp "$(found "$name")" "$work/columns/" || exit 1
    done
    timed python3 -P -c "from pathlib import Path; from lsr.eval.bench.packages_gpu import read_columns
read_columns(Path('$work/columns'), Path('$beir'))" || exit 1
  fi
  xz -dc "$(found bm25.trec.xz)" > "$work/bm25.trec" && cp -r "$(found minilm)" "$work/" || exit 1
  timed timeout "${3:-560}" "${lsr[@]}" train prepare --dataset "$beir" --output "$work/data" "${sample[@]}" \
    --teachers "run=$work/bm25.trec,dense=$work/minilm" || exit 1
  xz -T0 -c "$work"/data/teachers/dense-minilm.trec > "$OUT/dense-teacher.trec.xz"
  cp "$work/data/prepare.json" "$OUT/prepare.json"
  exit 0
fi
if [ "$phase" = adapt ]; then
  timed timeout "$4" "${lsr[@]}" train adapt --corpus "$beir" \
    --model models/inference-free-minilm --data "$work/data" --output "$work/adapt" --eval-split dev \
    --eval-split test --steps "${STEPS:-1000}" --resume --max-minutes "$3" 2>&1 |
    tee -a "$work/adapt.log" | grep -v "it/s\]" | tail -n 40
  cp "$work/adapt.log" "$OUT/stdout.log"
  tar -C "$work/adapt" -cJf "$OUT/packages-report.tar.xz" --ignore-failed-read adapt_report.json report log.jsonl \
    train_config.json
  exit 0
fi
echo "unknown phase $phase" >&2
exit 2
