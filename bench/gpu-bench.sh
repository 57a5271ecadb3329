#!/usr/bin/env bash
# Speed on the GPU machine, glimpse against transformers on the same card, the
# same real-size random-weight models, the same image and token counts:
#
#   bench/gpu-bench.sh [BINARY]
#
# BINARY is a `--features cuda` build (see bench/README.md; .xz is unpacked).
# TOKENIZER (default bench/gpu-bundle/tokenizer.json) is the real Qwen2
# tokenizer. CONFIGS, NEW_TOKENS, REPEATS, OUT may be set. Device memory of each
# process is polled with nvidia-smi every 50 ms for a like-for-like peak.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-bench/gpu-bundle/glimpse}
TOKENIZER=${TOKENIZER:-bench/gpu-bundle/tokenizer.json}
CONFIGS=${CONFIGS:-"qwen2_vl_2b qwen3_vl_4b"}
NEW_TOKENS=${NEW_TOKENS:-128}
REPEATS=${REPEATS:-3}
OUT=${OUT:-/tmp/glimpse-gpu-bench}
mkdir -p "$OUT"

PY=${PYTHON:-}
for p in /opt/torch/.venv/bin/python python3; do
  if [ -z "$PY" ] && command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch, transformers" 2>/dev/null; then
    PY=$p
  fi
done
[ -n "$PY" ] || { echo "no Python with torch and transformers; set PYTHON=" >&2; exit 2; }
if [ "${BIN%.xz}" != "$BIN" ]; then xz -dkf "$BIN"; BIN=${BIN%.xz}; fi
[ -x "$BIN" ] || { echo "no glimpse binary at $BIN (see bench/README.md)" >&2; exit 2; }
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
for d in "$SITE"/nvidia/*/lib "$SITE"/nvidia/cu13/lib; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

"$PY" - "$OUT/card_1280x720.png" <<'PYEOF'
import sys
import numpy as np
from PIL import Image
w, h = 1280, 720
x = np.arange(w)[None, :].repeat(h, 0)
y = np.arange(h)[:, None].repeat(w, 1)
img = np.stack([(x * 255 // w) ^ ((y % 64 == 0) * 255), y * 255 // h, (w - x) * y * 255 // (w * h)], -1)
Image.fromarray(img.astype(np.uint8)).save(sys.argv[1])
PYEOF

# Runs a command while polling its GPU memory; the peak (MiB) goes to $2.
with_peak() {
  local peak_file=$1; shift
  "$@" &
  local pid=$! peak=0
  while kill -0 "$pid" 2>/dev/null; do
    local used
    used=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits \
      | awk -F', ' -v p="$pid" '$1 == p {print $2}')
    [ -n "$used" ] && [ "$used" -gt "$peak" ] && peak=$used
    sleep 0.05
  done
  wait "$pid"
  echo "$peak" > "$peak_file"
}

for c in $CONFIGS; do
  "$PY" bench/make_model.py --config "$c" --tokenizer "$TOKENIZER" --out "$OUT/$c"
  with_peak "$OUT/$c.transformers.peak" sh -c "exec '$PY' bench/reference.py --model '$OUT/$c' \
    --image '$OUT/card_1280x720.png' --new-tokens $NEW_TOKENS --repeats $REPEATS > '$OUT/$c.transformers.json'"
  with_peak "$OUT/$c.glimpse.peak" sh -c "exec '$BIN' bench --model '$OUT/$c' --image '$OUT/card_1280x720.png' \
    --new-tokens $NEW_TOKENS --repeats $REPEATS --device cuda:0 --dtype bf16 --json > '$OUT/$c.glimpse.json'"
done
"$PY" bench/compare.py "$OUT" $CONFIGS | tee "$OUT/summary.md"
