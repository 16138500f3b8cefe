#!/usr/bin/env bash
# Every GPU check in one go, each section's output saved as it finishes, so a job cut short keeps
# what it measured: the machine and models table (benchmarks/gpu.py), the quick start's LUNA
# chain on CUDA (benchmarks/gpu_chain.sh) and, with an unpacked mamba-ssm source tree, mamba-ssm's
# selective_scan_cuda built for this GPU alone (in the background, niced, while the models run)
# and its scan against ours. Asserts nothing; the numbers go into docs/performance.md by hand.
#
#   bash benchmarks/gpu_all.sh OUT [MAMBA_SOURCE]      # e.g. MAMBA_SOURCE=/tmp/mamba_ssm-2.3.2.post1
#   BUDGET=440 bash benchmarks/gpu_all.sh OUT SRC       # seconds the whole run may take (default 440)
set -u
OUT=${1:?usage: gpu_all.sh OUT [MAMBA_SOURCE]}
SRC=${2:-}
BUDGET=${BUDGET:-440}
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
BUILD_DIR=$(mktemp -d /tmp/biofound-mamba-build.XXXXXX)
if [ -n "$SRC" ]; then
  ( MAX_JOBS=${MAX_JOBS:-10} nice -n 19 python3 "$HERE/gpu.py" build-mamba --mamba-source "$SRC" --mamba-build "$BUILD_DIR" > "$OUT/build.log" 2>&1
    echo "build rc=$? at ${SECONDS}s" >> "$OUT/build.log" ) &
  BUILD=$!
fi
timeout 220 python3 "$HERE/gpu.py" machine models 2>&1 | tee "$OUT/models.md"
echo "models done at ${SECONDS}s"
left=$(( BUDGET - 110 - SECONDS )); [ "$left" -gt 150 ] && left=150
[ "$left" -gt 30 ] && timeout "$left" bash "$HERE/gpu_chain.sh" /tmp/biofound-gpu-chain 2>&1 | tee "$OUT/chain.log"
echo "chain done at ${SECONDS}s"
if [ -n "$SRC" ]; then
  while kill -0 "$BUILD" 2>/dev/null && [ "$SECONDS" -lt $(( BUDGET - 60 )) ]; do sleep 2; done
  tail -n 2 "$OUT/build.log"
fi
left=$(( BUDGET - SECONDS ))
scan_args=()
[ -n "$SRC" ] && grep -q "build rc=0" "$OUT/build.log" && scan_args=(--mamba-source "$SRC" --mamba-build "$BUILD_DIR")
[ "$left" -gt 20 ] && timeout "$left" python3 "$HERE/gpu.py" scan "${scan_args[@]}" 2>&1 | tee "$OUT/scan.md"
echo "all done at ${SECONDS}s"
