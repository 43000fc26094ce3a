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
