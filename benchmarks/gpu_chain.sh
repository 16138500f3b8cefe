#!/usr/bin/env bash
# The quick start's LUNA chain on a GPU, the way users run it there: the shipped recipe
# fine-tuned in fp32, bf16 and fp16 with loader workers and evaluation every epoch, each run
# evaluated, the bf16 run exported (ONNX, safetensors) and applied by `biofound predict` in fp32
# and bf16. Prints each command's exit status and the predict agreement; asserts nothing.
#
#   bash benchmarks/gpu_chain.sh [WORKDIR]        # default /tmp/biofound-gpu-chain
#   DEVICE=cpu PRECISIONS="fp32 bf16" bash benchmarks/gpu_chain.sh   # the same on a CPU (bf16 is exported)
set -u
DEVICE=${DEVICE:-cuda}
PRECISIONS=${PRECISIONS:-fp32 bf16 fp16}
W=${1:-/tmp/biofound-gpu-chain}
rm -rf "$W" && mkdir -p "$W"
bf() { echo "+ biofound $*"; python3 -m biofound_cli "$@" > "$W/last.log" 2>&1; echo "rc=$?"; tail -c 1500 "$W/last.log"; echo; }
bf quickstart --only luna --no-export --out "$W/qs" --quiet --no-progress
P="$W/qs/luna/packed"
R=biofound_cli/data/recipes/luna_scp1.toml
for precision in $PRECISIONS; do
  S=(--set "data.train=$P/train.h5" --set "data.val=$P/val.h5" --set "data.test=$P/test.h5"
     --set "train.device=$DEVICE" --set "train.precision=$precision" --set data.num_workers=2
     --set train.epochs=4 --set "output.runs_dir=$W/runs" --set "output.run_name=luna-$precision")
  bf finetune "$R" "${S[@]}" --no-progress --json
  bf evaluate "$R" "${S[@]}" --no-progress --json
done
RUN="$W/runs/luna-bf16"
bf export "$RUN/checkpoints/best" -f onnx -f safetensors --out "$RUN/export" --no-progress --json
for precision in fp32 bf16; do
  bf predict "$RUN/checkpoints/best" biofound_cli/data/samples/eeg/scp1/SelfRegulationSCP1_TEST.ts.gz \
    --out "$W/pred-$precision" --device "$DEVICE" --precision "$precision" --workers 2 --no-progress --json
done
python3 - "$W" <<'PY'
import csv
import sys

tables = {p: list(csv.DictReader(open(f"{sys.argv[1]}/pred-{p}/SelfRegulationSCP1_TEST.csv"))) for p in ("fp32", "bf16")}
label = next(key for key in tables["fp32"][0] if "label" in key)
same = sum(a[label] == b[label] for a, b in zip(tables["fp32"], tables["bf16"]))
print(f"predict bf16 vs fp32 on {len(tables['fp32'])} windows: {same} labels agree")
PY
