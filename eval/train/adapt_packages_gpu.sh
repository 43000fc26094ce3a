#!/usr/bin/env bash
# Issue 23 on the packages corpus (1,038,337 documents): label-free adaptation with a BM25 teacher run on the CPU
# machine (Lucene needs Java) and a dense teacher, the dense baseline, training and the before/after evaluation on
# the GPU machine. One device call carries at most 64 MiB with the repository and a warm machine keeps /tmp between
# calls, so the work comes in phases, each one call, in this order:
#
#   stage DIR   keep DIR/text.xz, the corpus's largest column (eval/bench/packages_gpu.py write_columns), in /tmp
#   dense DIR   DIR: the other columns, queries and qrels, the dense model (DIR/minilm) and wheels. Rebuilds the
#               corpus; `lsr train prepare --teachers dense=DIR/minilm` with the sample of pseudo-queries the CPU
#               machine's BM25 prepare used (same flags, same seed, so the same queries); the dense baseline's dev
#               and test runs. Files for $OUT. (The shipped model is left out of this call's tree to make room.)
#   adapt DIR MINUTES SECONDS
#               DIR/bm25.trec.xz: the BM25 teacher's run (`teachers/bm25.trec` of the CPU machine's prepare).
#               `lsr train prepare` from both runs, then `lsr train adapt --resume --max-minutes MINUTES`, the whole
#               command stopped after SECONDS: a call cut short continues where it stopped in the next `adapt` call.
#               Files for $OUT.
#
# PSEUDO_MAX_SHARE (default 1) is prepare's --pseudo-max-share, for harder pseudo-queries (issue 23, session 14).
set -uo pipefail
phase=$1 dir=$2
source "$(dirname "$0")/gpu_env.sh"
export LSR_CACHE=/tmp/p23/cache
work=/tmp/p23 beir=/tmp/p23/packages sample=(--pseudo-queries 3 --pseudo-holdout 200 --max-queries 8000 --seed 0
  --pseudo-max-share "${PSEUDO_MAX_SHARE:-1}")  # the CPU machine's BM25 prepare must use the same value
mkdir -p "$work/columns"
exec > >(tee -a "$OUT/$phase.log") 2>&1
if [ "$phase" = stage ]; then
  cp "$dir/text.xz" "$work/columns/" && ls -la "$work/columns" && exit 0
fi
if [ "$phase" = dense ] && [ ! -d /tmp/site ]; then
  install_wheels "$dir" || exit 1
elif [ ! -d /tmp/site ]; then
  echo "this machine is a fresh one (no /tmp/site): run the stage and dense phases first" >&2 && exit 1
fi
stage_package || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "$phase" = dense ]; then
  [ -d "$work/minilm" ] || { cp "$dir"/{source.xz,title.xz,queries.jsonl.gz,dev.tsv,test.tsv} "$work/columns/" &&
    cp -r "$dir/minilm" "$work/"; } || exit 1
  du -sh "$LSR_CACHE"/*/* 2>/dev/null  # a cut-short call's encodings, resumed by the cache
  [ -f "$beir/corpus.jsonl" ] || timed python3 -P -c "from pathlib import Path; from lsr.eval.bench.packages_gpu import read_columns
read_columns(Path('$work/columns'), Path('$beir'))" || exit 1
  timed timeout "${3:-3000}" "${lsr[@]}" train prepare --dataset "$beir" \
    --output "$work/dense-data" "${sample[@]}" --teachers "dense=$work/minilm" || exit 1
  for split in dev test; do
    timed "${lsr[@]}" eval run --dataset "$beir" --split "$split" --retriever dense --dense-model "$work/minilm" --index exact \
      --k 100 --output-dir "$work/dense-$split"
    xz -T0 -c "$work/dense-$split/run.trec" > "$OUT/dense-$split.trec.xz"
  done
  xz -T0 -c "$work"/dense-data/teachers/dense-minilm.trec > "$OUT/dense-teacher.trec.xz"
  cp "$work/dense-data/prepare.json" "$OUT/dense-prepare.json"
  exit 0
fi
if [ "$phase" = adapt ]; then
  if [ ! -f "$work/data/prepare.json" ]; then
    xz -dc "$dir/bm25.trec.xz" > "$work/bm25.trec" || exit 1
    timed "${lsr[@]}" train prepare --dataset "$beir" --output "$work/data" "${sample[@]}" \
      --teachers "run=$work/bm25.trec,run=$work/dense-data/teachers/dense-minilm.trec" 2>&1 | tail -n 3 || exit 1
  fi
  timed timeout "$4" "${lsr[@]}" train adapt --corpus "$beir" \
    --model models/inference-free-minilm --data "$work/data" --output "$work/adapt" --eval-split dev \
    --eval-split test --resume --max-minutes "$3" 2>&1 |
    tee -a "$work/adapt.log" | grep -v "it/s\]" | tail -n 40
  cp "$work/adapt.log" "$OUT/stdout.log"
  tar -C "$work/adapt" -cJf "$OUT/packages-report.tar.xz" --ignore-failed-read adapt_report.json report log.jsonl \
    train_config.json
  cp "$work/data/prepare.json" "$OUT/prepare.json"
  exit 0
fi
echo "unknown phase $phase" >&2
exit 2
