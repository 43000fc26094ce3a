#!/usr/bin/env bash
# The shipped inference-free models, trained on one GPU (eval/RESULTS.md, "Training"):
#
#   OUT=/some/dir DATA=runs/train bash eval/train/inference_free_gpu.sh STAGE [STAGE ...]
#
# STAGEs, in order (each resumable; a stage already done is skipped):
#   mlm      masked-LM warm-up of all-MiniLM-L6-v2 with a fresh tied MLM head on the SciFact + NFCorpus corpora
#   minilm   inference-free training from the warm-up: ensemble distillation (BM25 + MiniLM + SPLADE-tiny teachers)
#            + InfoNCE + IDF-aware FLOPS, learnable IDF; stops after MINUTES and resumes on the next call
#   tiny     the same recipe from splade-tiny (no warm-up: it has its MLM head)
#   long     continues the minilm model (FROM, default its kept model) with 512-token documents (most SciFact and
#            NFCorpus documents are longer than 256 tokens), 4 documents per query, lambda_d 1e-3, no lambda warm-up
#   evaluate nDCG@10 (exact search), sizes and FLOPS of every kept model on SciFact test and NFCorpus dev
#            (SCIFACT, NFCORPUS: the BEIR folders) into $OUT/eval-NAME.json
#   export   fp16 copies of the kept models, packed in <=15 MB pieces under $OUT (the device returns files <16 MiB)
#
# DATA holds the folders made by `lsr train prepare` (data-scifact, data-nfcorpus: commands in eval/RESULTS.md);
# MINILM is the all-MiniLM-L6-v2 folder (default: the embedded one), TINY the splade-tiny folder.
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
DATA=${DATA:-runs/train}
WORK=${WORK:-runs/train}
MINILM=${MINILM:-all-minilm-l6-v2}
TINY=${TINY:-../shared/models/splade-tiny}
MINUTES=${MINUTES:-7}
FROM=${FROM:-$WORK/if-minilm/model}
SCIFACT=${SCIFACT:-../shared/data/beir/scifact}
NFCORPUS=${NFCORPUS:-../shared/data/beir/nfcorpus}
STEPS=${STEPS:-4000}
LSR=(python3 -c "from lsr.cli import main; main()")
DEV=(--dev "$DATA/data-scifact" --dev "$DATA/data-nfcorpus")
TRAIN_DATA=(--data "$DATA/data-scifact" --data "$DATA/data-nfcorpus")
RECIPE=(--kind inference-free --batch-size 32 --group-size 8 --teacher-temperature 0.05 --lambda-d 3e-3
        --lambda-warmup 1000 --idf-lr 1e-3 --eval-every 500 --save-every 500)
for stage in "$@"; do
  case $stage in
    mlm)
      [ -f "$WORK/mlm-minilm/mlm.json" ] || "${LSR[@]}" train mlm --model "$MINILM" --corpus "$DATA/data-scifact" \
        --corpus "$DATA/data-nfcorpus" --output "$WORK/mlm-minilm" --steps 2000 --batch-size 64 --lr 2e-4
      cp "$WORK/mlm-minilm/mlm.json" "$OUT/" ;;
    minilm)
      "${LSR[@]}" train run --model "$WORK/mlm-minilm" "${TRAIN_DATA[@]}" "${DEV[@]}" "${RECIPE[@]}" \
        --output "$WORK/if-minilm" --steps "$STEPS" --lr 8e-5 --warmup-steps 200 --max-minutes "$MINUTES" --resume
      cp "$WORK/if-minilm/log.jsonl" "$OUT/minilm-log.jsonl"; cp "$WORK/if-minilm/training.png" "$OUT/minilm-training.png" ;;
    tiny)
      "${LSR[@]}" train run --model "$TINY" "${TRAIN_DATA[@]}" "${DEV[@]}" "${RECIPE[@]}" \
        --output "$WORK/if-tiny" --steps "$STEPS" --lr 2e-4 --warmup-steps 200 --max-minutes "$MINUTES" --resume
      cp "$WORK/if-tiny/log.jsonl" "$OUT/tiny-log.jsonl"; cp "$WORK/if-tiny/training.png" "$OUT/tiny-training.png" ;;
    long)
      "${LSR[@]}" train run --model "$FROM" "${TRAIN_DATA[@]}" "${DEV[@]}" --kind inference-free --max-length 512 \
        --batch-size 32 --group-size 4 --teacher-temperature 0.05 --lambda-d 1e-3 --lambda-warmup 0 --idf-lr 1e-3 \
        --eval-every 500 --save-every 500 --output "$WORK/if-minilm-long" --steps "$STEPS" --lr 3e-5 \
        --warmup-steps 100 --max-minutes "$MINUTES" --resume
      cp "$WORK/if-minilm-long/log.jsonl" "$OUT/long-log.jsonl"
      cp "$WORK/if-minilm-long/training.png" "$OUT/long-training.png" ;;
    evaluate)
      for name in minilm tiny minilm-long; do
        model="$WORK/if-$name/model"
        [ "$name" != minilm ] || [ -d "$model" ] || model=$FROM
        [ -d "$model" ] || continue
        "${LSR[@]}" train evaluate --model "$model" --dataset "$SCIFACT:test" --dataset "$NFCORPUS:dev" \
          --output "$OUT/eval-$name.json"
        [ "$name" != minilm ] || "${LSR[@]}" train evaluate --model "$model" --dataset "$SCIFACT:test" \
          --dataset "$NFCORPUS:dev" --max-length 512 --output "$OUT/eval-$name-512.json"
      done ;;
    export)
      for name in minilm tiny minilm-long; do
        [ -d "$WORK/if-$name/model" ] || continue
        python3 -c "import sys; from lsr.models import load_encoder; \
load_encoder(sys.argv[1], device='cpu', dtype='float16').save_pretrained(sys.argv[2])" \
          "$WORK/if-$name/model" "$WORK/export-$name"
        tar -C "$WORK" -cf - "export-$name" | split -b 15m - "$OUT/model-$name.tar.part-"
      done ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
