#!/usr/bin/env bash
# The GPU machine's checks in one run (see bench/README.md):
#
#   bench/gpu-check.sh [BINARY] [gpu_check.py flags...]
#
# BINARY defaults to bench/gpu-bundle/glimpse (a `--features cuda` build; a
# .xz file is unpacked first). The CUDA 13 libraries the binary links are taken
# from the NVIDIA wheels of the Python that has torch. DEVICE=cpu runs the same
# checks on the CPU with a tiny model, anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-bench/gpu-bundle/glimpse}
[ $# -gt 0 ] && shift
DEVICE=${DEVICE:-cuda:0}

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for p in /opt/torch/.venv/bin/python python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch, transformers" 2>/dev/null; then
      PY=$p
      break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "no Python with torch and transformers found; set PYTHON=/path/to/python" >&2
  exit 2
fi

if [ "${BIN%.xz}" != "$BIN" ]; then
  xz -dkf "$BIN"
  BIN=${BIN%.xz}
fi
if [ ! -x "$BIN" ]; then
  echo "no glimpse binary at $BIN; build one (bench/README.md) or pass its path" >&2
  exit 2
fi

SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
for d in "$SITE"/nvidia/*/lib; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used --format=csv
fi
if ldd "$BIN" | grep 'not found'; then
  echo "the libraries above are missing for $BIN" >&2
  exit 3
fi
exec "$PY" bench/gpu_check.py "$BIN" --device "$DEVICE" "$@"
