#!/usr/bin/env bash
# Issue 23 on the small corpora (Cranfield, CISI, NFCorpus): `lsr train adapt` from the shipped model on each
# corpus's label-free folder, prepared on the CPU machine (the BM25 teacher needs Lucene, which the GPU machine
# lacks), with a schedule other than the default (STEPS). Two phases:
#
#   pack DIR NAME=PREPARED:CORPUS:SPLIT...
#               machine A: DIR/NAME.tar.xz holds the prepared folder (`lsr train prepare --teachers bm25,dense`),
#               the BEIR corpus (corpus, queries and the qrels of SPLIT only: NFCorpus's train qrels are 2.5 MB
#               and not needed) and SPLIT, the split the report scores; DIR/wheels the wheels the GPU image lacks
#               (ir_measures, pytrec_eval). One device call carries at most 64 MiB with the repository and the
#               shipped model (~53 MB), so DIR is kept small: pack into one DIR the corpora of one call.
#   adapt DIR STEPS SECONDS NAME...
#               the GPU machine: for each NAME, `lsr train adapt --steps STEPS --eval-split SPLIT` with its
#               before/after report, each under a `timeout` so that the call ends within SECONDS; every report
#               comes back as $OUT/NAME-report.tar.xz, the log as $OUT/NAME.log. Training stops 60 s before
#               SECONDS run out with a checkpoint; the same command again on the warm machine resumes it. A call
#               with under 4 minutes left trains nothing and reports on the run's latest checkpoint.
#
# Session 11 ran the same corpora at the default 1,000 steps (eval/RESULTS.md, "Label-free adaptation").
set -uo pipefail
phase=$1 dir=$2
shift 2
if [ "$phase" = pack ]; then
  mkdir -p "$dir/wheels" || exit 1
  for spec in "$@"; do
    name=${spec%%=*} rest=${spec#*=}
    prepared=${rest%%:*} rest=${rest#*:}
    corpus=${rest%%:*} split=${rest#*:}
    stage=$(mktemp -d) || exit 1
    mkdir -p "$stage/corpus/qrels" && cp -r "$prepared" "$stage/data" && echo "$split" > "$stage/split" || exit 1
    rm -rf "$stage/data/teachers"  # each teacher's own run (for re-weighting later): training reads examples only
    cp "$corpus"/corpus.jsonl* "$corpus"/queries.jsonl* "$stage/corpus/" || exit 1
    cp "$corpus/qrels/$split.tsv" "$stage/corpus/qrels/" || exit 1
    tar -C "$stage" -cJf "$dir/$name.tar.xz" . && rm -rf "$stage" || exit 1
  done
  source "$(dirname "$0")/gpu_env.sh"
  download_wheels "$dir/wheels" || exit 1
  du -cb "$dir"/* | tail -n 1
  exit 0
fi
[ "$phase" = adapt ] || { echo "unknown phase $phase" >&2; exit 2; }
steps=$1 budget=$2
shift 2
deadline=$(( $(date +%s) + budget ))
source "$(dirname "$0")/gpu_env.sh"
[ -d /tmp/site ] || install_wheels "$dir/wheels" || exit 1
stage_package || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
for name in "$@"; do
  left=$(( deadline - $(date +%s) ))
  [ "$left" -gt 60 ] || break
  work=/tmp/p23s/$name
  mkdir -p "$work" && tar -C "$work" -xJf "$dir/$name.tar.xz" || exit 1
  # --max-minutes saves a checkpoint and stops training 60 s before the call's end (loading, the report), so a
  # run longer than one call goes on from there in the next call on the warm machine; `timeout` is the hard stop
  # a call too short to train on (under 4 minutes) reports on the run's latest checkpoint instead (its step is
  # in the log)
  only=()
  [ "$left" -ge 240 ] || [ ! -d "$work/adapt/checkpoints" ] || only=(--report-only)
  timed timeout "$left" "${lsr[@]}" train adapt --corpus "$work/corpus" --model models/inference-free-minilm \
    --data "$work/data" --output "$work/adapt" --eval-split "$(cat "$work/split")" --steps "$steps" \
    --max-minutes "$(( (left - 60) / 60 )).$(( (left - 60) % 60 * 10 / 60 ))" --resume "${only[@]}" 2>&1 \
    | grep -v "it/s\]" >> "$OUT/$name.log"
  tail -n 20 "$OUT/$name.log"
  tar -C "$work/adapt" -cJf "$OUT/$name-report.tar.xz" --ignore-failed-read adapt_report.json report log.jsonl \
    train_config.json
done
