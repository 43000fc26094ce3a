#!/usr/bin/env bash
# Issue 21 on the GPU machine (16 cores): every CPU engine at 16 threads beside lsr's GPU kernel, on the packages
# corpus's million documents, in one or more device calls of at most 10 minutes each.
#
#   bash eval/bench/engines_gpu.sh DIR SECONDS ENGINE...
#   bash eval/bench/engines_gpu.sh stage PART      (a call of its own: PART's files into /tmp/b21-carry)
#
# One call carries at most 64 MiB with the repository (~57 MB with the shipped model), less than the columns, the
# model and the wheels together; `stage` calls on the warm machine gather them part by part in /tmp/b21-carry (a
# column may come in parts, `read_columns`), and the run then names DIR=/tmp/b21-carry. ENGINE `lsr` is lsr's own
# sweep (exact, pruned and clustered settings, the clusters built there); ENGINE+clustered (e.g. seismic+clustered)
# is that engine beside lsr's exact and clustered settings in one run (--lsr-grid clustered), for ratios from one
# run; every other is lsr's exact reference plus that engine (--reference-only).
# DIR holds what travels: columns/ (eval/bench/packages_gpu.py write_columns), splade-tiny/ (its weights in fp16)
# and wheels/ (the engines' cp312 wheels and the dependencies the image lacks). SECONDS is this call's budget: every
# step runs under a `timeout` that ends it before the budget does, so an engine whose build does not finish costs
# only its own result. What a warm machine keeps in /tmp (the encoded corpus, finished results) is reused by the
# next call, so a second call goes on with the engines the first did not reach (session 21, H100 machine: encoding
# 2.7 min; lsr's whole sweep with its clusters about 8 min, kANNolo 6, BMP about 7: name one engine a call).
# QUERIES (default 1000) is how many of the unjudged queries a run times: a call with no ENGINE only encodes and
# times the GPU, and QUERIES=500 halves every sweep so that two engines' builds and sweeps fit one 10-minute call.
# Everything comes back in one file, $OUT/b21.tar.xz, rewritten after every step.
set -uo pipefail
if [ "$1" = stage ]; then
  mkdir -p /tmp/b21-carry && cp -r "$2"/. /tmp/b21-carry/ && du -sh /tmp/b21-carry && find /tmp/b21-carry -type f | sort
  exit $?
fi
dir=$(realpath "$1") budget=$2
shift 2
deadline=$(( $(date +%s) + budget ))
source "$(dirname "$0")/../train/gpu_env.sh"
work=/tmp/b21 results=/tmp/b21/results
mkdir -p "$results"
exec > >(tee -a "$results/log.txt") 2>&1
left() { echo $(( deadline - $(date +%s) )); }
ship() { tar -C "$results" -cJf "$OUT/b21.tar.xz" . ; }
# a file too large for one call's carry comes in pieces (`split -n 2 FILE FILE.split-`), joined here once
for first in $(find "$dir" -name '*.split-aa'); do
  cat "${first%aa}"* > "${first%.split-aa}" && rm "${first%aa}"* || exit 1
done
[ -d /tmp/site ] || install_wheels "$dir/wheels" || exit 1
stage_package || exit 1
# PISA's TBB: its wheel keeps the shared library among its data files, which pip --target leaves out (a carry
# without PISA has no TBB wheel)
if compgen -G "$dir/wheels/tbb-*.whl" > /dev/null; then
  mkdir -p /tmp/tbb && python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1])
[open('/tmp/tbb/' + n.rsplit('/', 1)[1], 'wb').write(z.read(n)) for n in z.namelist() if '/lib/libtbb' in n]" \
    "$dir"/wheels/tbb-*.whl && export LD_LIBRARY_PATH=/tmp/tbb${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc; uptime; } | tee -a "$results/machine.txt"
# the named engines' modules import (a wheel missing from DIR fails here, before the corpus is encoded)
modules=$(for e in "$@"; do case ${e%+clustered} in pisa) echo pyterrier_pisa ;; seismic*) echo seismic ;;
  bmp | kannolo) echo "${e%+clustered}" ;; esac; done | sort -u | paste -sd, -)
[ -z "$modules" ] || python3 -P -c "import $modules; print('engines import')" || exit 1
mkdir -p "$work/packages-gpu"
if [ ! -f "$results/report-splade-tiny.json" ]; then
  # encodes the corpus (bf16), builds lsr's index, times its GPU kernel and its 16-thread CPU kernel on the same
  # first 1,000 unjudged queries the engines below answer
  timed timeout "$(left)" python3 -P -m lsr.eval.bench.packages_gpu --model "$dir/splade-tiny" --name splade-tiny \
    --columns "$dir/columns" --work "$work" --out "$work/packages-gpu" --timing-queries 1000 || { ship; exit 1; }
  cp "$work/packages-gpu/report-splade-tiny.json" "$results/"
  ship
fi
for engine in "$@"; do
  # finished engines are skipped; a result the call's limit cut short (`"complete": false`) is run again whole
  grep -qs '"complete": true' "$results/packages-1m-16t-$engine.json" && continue
  [ "$(left)" -gt 60 ] || break
  case $engine in
    lsr) chosen=() ;;
    *+clustered) chosen=(--lsr-grid clustered --engine "${engine%+clustered}") ;;
    *) chosen=(--reference-only --engine "$engine") ;;
  esac
  timed timeout "$(( $(left) - 20 ))" "${lsr[@]}" bench engines --vectors "$work/splade-tiny.vectors" \
    --dataset "$work/packages" --split unjudged --queries "${QUERIES:-1000}" --rounds 2 --threads 16 "${chosen[@]}" \
    --output "$results/packages-1m-16t-$engine.json"
  cp "$OUT/times.txt" "$results/" 2>/dev/null
  ship
done
uptime | tee -a "$results/machine.txt"
ship
