#!/usr/bin/env bash
# Issue 23, "the IDF-aware FLOPS strength chosen on dev for the best quality per posting": the shipped
# inference-free model trained further on its own recipe's data (the SciFact and NFCorpus training folders of
# eval/RESULTS.md, "Training"; no packages folder: session 13's mix with it fell below the shipped model on SciFact
# dev) once per document FLOPS strength lambda_d, every other setting the recipe's "long" stage. Each run keeps the
# checkpoint with its best mean nDCG@10 over the two dev splits (held-out train queries; the shipped model itself
# when no step beats it, which the train log says); the lambda_d whose kept model scores best there is the one
# measured on the target splits, so no test label takes part in any choice; the dev rows give each kept model's
# postings per document, so quality per posting is read from the same rows. Phases:
#
#   pack DIR           (CPU machine) both training folders as `lsr train prepare` wrote them (less the teachers'
#                      own runs, which training does not read), the BEIR queries, the qrels of the target splits
#                      (SciFact test, NFCorpus dev) and the wheels the GPU image lacks, as one tar cut into pieces
#                      of PIECE bytes (default 4.5 MB) DIR/part-*, and their checksums DIR/pieces.sha256: the whole
#                      (13.4 MB) does not fit one device call beside the repository (60 MB of the 64 MiB limit).
#   stage DIR          (GPU) each call carries DIR/pieces.sha256 and one or more pieces; the pieces are kept in
#                      /tmp (which a warm machine keeps between calls) and unpacked once all are there and check.
#   train MINUTES      (GPU) each lambda_d of LAMBDAS (default "3e-4 1e-3 3e-3"), PARALLEL at once (default all) on
#                      the one GPU, STEPS steps each (default 1000) from the shipped model; a run cut by MINUTES
#                      stops with a checkpoint, and the same command on the warm machine resumes it and skips the
#                      finished ones. Logs for $OUT.
#   report             (GPU) the dev splits' rows of the shipped model and of the best lambda_d's kept model (`lsr
#                      train evaluate`: nDCG@10, document and query non-zeros, FLOPS), both models' runs on the
#                      target splits (`lsr eval run`), and the best model's fp16 export in <=15 MB pieces.
set -uo pipefail
phase=$1
work=/tmp/sweep
model=models/inference-free-minilm
lambdas=${LAMBDAS:-3e-4 1e-3 3e-3} steps=${STEPS:-1000}  # BATCH (train_long): smaller for a CPU trial run
source "$(dirname "$0")/gpu_env.sh"
if [ "$phase" = pack ]; then
  dir=$2 data=${DATA:-runs/train}
  # DIR is pack's own: new, empty or an earlier pack's (its checksums), never a folder of someone else's part-* files
  [ ! -e "$dir" ] || [ -f "$dir/pieces.sha256" ] || [ -z "$(ls -A "$dir")" ] ||
    { echo "$dir holds files pack did not write: give a new folder" >&2; exit 1; }
  stage=$(mktemp -d) || exit 1
  for name in scifact nfcorpus; do
    mkdir -p "$stage/data-$name" "$stage/beir/$name/qrels" &&
      cp -r "$data/data-$name"/{corpus.jsonl.gz,examples.jsonl.gz,prepare.json,qrels,queries.jsonl} "$stage/data-$name/" &&
      cp "../shared/data/beir/$name/queries.jsonl" "$stage/beir/$name/" || exit 1
  done
  cp ../shared/data/beir/scifact/qrels/test.tsv "$stage/beir/scifact/qrels/" &&
    cp ../shared/data/beir/nfcorpus/qrels/dev.tsv "$stage/beir/nfcorpus/qrels/" &&
    download_wheels "$stage/wheels" || exit 1
  # the checksums go first and come back last (renamed into place), so a pack cut short leaves pieces stage refuses
  mkdir -p "$dir" && rm -f "$dir/pieces.sha256" "$dir"/part-* || exit 1
  # no compression: the bulk is the folders' own gzip files, which lsr reads as they are
  tar -C "$stage" -cf - . | split -b "${PIECE:-4500000}" - "$dir/part-" || exit 1
  (cd "$dir" && sha256sum part-* > pieces.sha256.tmp && mv pieces.sha256.tmp pieces.sha256) && rm -rf "$stage" ||
    exit 1
  ls -l "$dir"
  exit 0
fi
exec > >(tee -a "$OUT/$phase.log") 2>&1
if [ "$phase" = stage ]; then
  dir=$2
  mkdir -p "$work/pieces" && cp "$dir"/pieces.sha256 "$dir"/part-* "$work/pieces/" || exit 1
  have=$(ls "$work/pieces" | grep -c part-) want=$(wc -l < "$work/pieces/pieces.sha256")
  [ "$have" -ge "$want" ] || { echo "pieces so far: $have of $want: carry the others"; exit 0; }
  (cd "$work/pieces" && sha256sum --quiet -c pieces.sha256) || { echo "a piece does not match its checksum" >&2; exit 1; }
  cat "$work/pieces"/part-* | tar -C "$work" -xf - || exit 1
  for name in scifact nfcorpus; do  # the training folder's corpus is the BEIR corpus, gzipped
    ln -sf "$work/data-$name/corpus.jsonl.gz" "$work/beir/$name/corpus.jsonl.gz" || exit 1
  done
  install_wheels "$work/wheels" || exit 1
  echo "staged: $(ls "$work")"
  exit 0
fi
[ -d /tmp/site ] && [ -d "$work/beir" ] || { echo "this machine is not staged: run the stage phase first" >&2; exit 1; }
stage_package || exit 1
export LSR_CACHE=$work/cache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader  # into the log: a call returns at most 8 files
if [ "$phase" = train ]; then
  # PARALLEL runs (default: all) share the GPU at once: one MiniLM run keeps an H100 busy only part of the time
  # (its steps wait on Python and on kernel launches), and device time, not GPU memory, is what a session lacks;
  # PARALLEL=1 runs them in turn. Each run stops with a checkpoint by the deadline, and the same command resumes
  # the unfinished ones.
  deadline=$(( $(date +%s) + 60 * $2 )) running=() pids=()
  for lambda in $lambdas; do
    out=$work/lambda-$lambda
    [ -d "$out/checkpoints/step-$steps" ] && continue  # finished in an earlier call
    while [ "$(jobs -rp | wc -l)" -ge "${PARALLEL:-99}" ]; do wait -n; done
    left=$(( (deadline - $(date +%s)) / 60 ))
    [ "$left" -ge 1 ] || break
    timed train_long "$lambda" "$out" "$steps" --data "$work/data-scifact" --data "$work/data-nfcorpus" \
      --dev "$work/data-scifact" --dev "$work/data-nfcorpus" --eval-every 250 --save-every 250 \
      --max-minutes "$left" --resume > "$work/lambda-$lambda.out" 2>&1 &
    running+=("$lambda") pids+=($!)
  done
  # by id, and not with none: a bare wait would also wait for this log's tee, which never ends
  [ "${#pids[@]}" -eq 0 ] || wait "${pids[@]}"
  for lambda in "${running[@]}"; do  # each run's output in turn, into this call's log
    echo "== lambda_d $lambda" && grep -v "it/s\]" "$work/lambda-$lambda.out"
    cp "$work/lambda-$lambda/log.jsonl" "$OUT/lambda-$lambda-log.jsonl"
  done
  exit 0
fi
if [ "$phase" = report ]; then
  best=$(python3 -P - "$work" $lambdas <<'PY'
import json, sys
best = {}
for lam in sys.argv[2:]:
    path = f"{sys.argv[1]}/lambda-{lam}/log.jsonl"
    try:
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    except FileNotFoundError:
        continue
    means = [row["mean_ndcg10"] for row in rows if "mean_ndcg10" in row]
    if means:
        best[lam] = max(means)
print(max(best, key=best.get) if best else "", file=sys.stdout)
print(json.dumps(best), file=sys.stderr)
PY
  )
  [ -n "$best" ] && [ -d "$work/lambda-$best/model" ] || { echo "no kept model: run train first" >&2; exit 1; }
  echo "best lambda_d on the dev splits: $best"
  mkdir -p "$work/runs" || exit 1
  for name in shipped "lambda-$best"; do
    path=$model && [ "$name" = shipped ] || path=$work/$name/model
    measure_model "$name" "$path" "$work" "$work/runs" || exit 1
  done
  tar -C "$work/runs" -cJf "$OUT/report.tar.xz" .  # dev rows and runs in one file, beside the model's pieces
  export_fp16 "$work/lambda-$best/model" "model-lambda-$best" "$work"
  exit 0
fi
echo "unknown phase $phase" >&2
exit 2
