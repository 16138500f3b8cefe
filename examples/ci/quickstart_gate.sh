#!/bin/bash
# CI gate: run the quick start and fail when a held-out metric is below a threshold.
#
#   examples/ci/quickstart_gate.sh METRIC THRESHOLD [OUT_DIR]
#   examples/ci/quickstart_gate.sh tinymyo.metrics.balanced_accuracy 0.5
#
# METRIC is a dotted path into the JSON summary of `biofound quickstart --json`; when it is not
# there the script lists the numeric fields that are. Needs only python3 (no jq).
# Exit status: 0 the metric reaches the threshold; 1 it does not, or the quick start failed
# (its own status is printed); 2 bad arguments or a metric missing from the summary.

set -euo pipefail

usage="usage: quickstart_gate.sh METRIC THRESHOLD [OUT_DIR]"
METRIC="${1:?$usage}"
THRESHOLD="${2:?$usage}"
OUT_DIR="${3:-quickstart-ci}"
SUMMARY="${OUT_DIR%/}.summary.json"
PYTHON="${PYTHON:-python3}"

status=0
biofound quickstart --out "$OUT_DIR" --json --no-progress > "$SUMMARY" || status=$?
if [[ "$status" -ne 0 ]]; then
  echo "quickstart failed with exit status ${status}; see the log above" >&2
  exit 1
fi

"$PYTHON" -c '
import json, sys

path, metric, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(path) as handle:
    value = json.load(handle)


def numeric_fields(node, prefix=""):
    if isinstance(node, dict):
        for key, child in node.items():
            yield from numeric_fields(child, f"{prefix}{key}.")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix.rstrip(".")


summary = value
for key in metric.split("."):
    if not isinstance(value, dict) or key not in value:
        fields = ", ".join(numeric_fields(summary)) or "none"
        print(f"{path}: no field {metric}; numeric fields: {fields}", file=sys.stderr)
        sys.exit(2)
    value = value[key]
if isinstance(value, bool) or not isinstance(value, (int, float)):
    print(f"{path}: {metric} is {value!r}, not a number", file=sys.stderr)
    sys.exit(2)
verdict = "passes" if value >= threshold else "FAILS"
print(f"{metric} = {value:.4f} {verdict} the threshold {threshold:g}")
sys.exit(0 if value >= threshold else 1)
' "$SUMMARY" "$METRIC" "$THRESHOLD"
