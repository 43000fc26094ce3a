# Sourced by the GPU scripts of eval/train: the package importable on the bare GPU image, and a timer.
#
# The image has torch, transformers and typer but not lsr's other wheels (carried in a folder of .whl files) nor
# hnswlib (no wheel for it there; the package imports it, but no dense HNSW index is built on that machine). The
# folder layout (indexing/, serve/, eval/ and models/ inside lsr) exists only once installed, and editable
# installs fail there, so a package tree of links is staged and Python runs with -P (else the checkout's lsr/,
# without those folders, would shadow it).
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_MININTERVAL=20

install_wheels() {  # install_wheels DIR: DIR/*.whl into /tmp/site (kept while the machine stays warm)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$1"/*.whl \
    || return 1
  [ -n "$(python3 -c 'import hnswlib' 2>&1)" ] && echo '' > /tmp/site/hnswlib.py
  return 0
}

download_wheels() {  # download_wheels DIR (on the CPU machine): the wheels install_wheels needs for evaluation
  python3 -m pip download -q --no-deps --only-binary :all: --python-version 3.12 --dest "$1" \
    ir_measures pytrec_eval_terrier
}

stage_package() {  # the package as pyproject.toml maps it, from the checkout in the current folder
  rm -rf /tmp/stage && mkdir -p /tmp/stage/lsr && ln -s "$PWD"/lsr/* /tmp/stage/lsr/ || return 1
  local pair
  for pair in indexing:indexing serve:serve eval:eval shipped_models:models; do
    ln -s "$PWD/${pair#*:}" "/tmp/stage/lsr/${pair%%:*}" || return 1
  done
  export PYTHONPATH=/tmp/site:/tmp/stage
}

lsr=(python3 -P -c "from lsr.cli import main; main()")

timed() {  # timed COMMAND...: run it, append its exit status and seconds to $OUT/times.txt
  local start rc
  start=$(date +%s); "$@"; rc=$?
  echo "$* -> exit $rc, $(( $(date +%s) - start )) s" | tee -a "$OUT/times.txt"
  return $rc
}

# train_long LAMBDA OUTPUT STEPS ARGS...: `lsr train run` from the shipped model at its recipe's "long" stage
# (eval/RESULTS.md, "Training": 512-token documents, group 4, lr 3e-5, lambda_d without warm-up) with lambda_d
# LAMBDA and BATCH queries a step (default 32; smaller for a CPU trial run); ARGS give the data, dev splits and limits
train_long() {
  "${lsr[@]}" train run --model models/inference-free-minilm --kind inference-free --max-length 512 \
    --batch-size "${BATCH:-32}" --group-size 4 --teacher-temperature 0.05 --lambda-d "$1" --lambda-warmup 0 \
    --idf-lr 1e-3 --output "$2" --steps "$3" --lr 3e-5 --warmup-steps 100 "${@:4}"
}

# Both scripts that train the shipped model further (shipped_gpu.sh, flops_sweep_gpu.sh) measure a model the same way
# and bring it back the same way; WORK holds data-scifact, data-nfcorpus and beir/ as their phases stage them.
# measure_model NAME MODEL WORK JSONDIR: dev rows (`lsr train evaluate`) into JSONDIR/eval-dev-NAME.json, then the
# SciFact test and NFCorpus dev runs into WORK/runs/NAME-*
measure_model() {
  local spec
  timed "${lsr[@]}" train evaluate --model "$2" --dataset "$3/data-scifact:dev" --dataset "$3/data-nfcorpus:dev" \
    --output "$4/eval-dev-$1.json" || return 1
  for spec in scifact:test nfcorpus:dev; do
    timed "${lsr[@]}" eval run --dataset "$3/beir/${spec%:*}" --split "${spec#*:}" --retriever sparse --model "$2" \
      --output-dir "$3/runs/$1-${spec%:*}" --force || return 1
  done
}

# export_fp16 MODEL NAME WORK: MODEL in fp16 as $OUT/NAME.tar.part-* (15 MB each: returned files are at most 16 MiB)
export_fp16() {
  rm -rf "$3/export" && timed python3 -P -c "import sys; from lsr.models import load_encoder
load_encoder(sys.argv[1], device='cpu', dtype='float16').save_pretrained(sys.argv[2])" "$1" "$3/export" &&
    tar -C "$3" -cf - export | split -b 15m - "$OUT/$2.tar.part-"
}
