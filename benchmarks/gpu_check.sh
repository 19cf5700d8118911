#!/usr/bin/env bash
# GPU readiness check of actcli: prints one JSON line (stdout) in under 5 minutes on one CUDA GPU.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --device cpu # every phase on the CPU with tiny sizes (checks the script)
#
# Measures X3D-S and videomae_base training throughput (bf16 autocast, channels-last; model alone,
# loader alone, together: which one is the bottleneck), inference latency p50/p95 at batch 1 and 8,
# bf16 vs fp32 top-1 of r3d_tiny trained on the synthetic demo, and torchcodec GPU decoding (NVDEC,
# --decoder torchcodec-cuda) against CPU decoding. Without a CUDA GPU it prints {"gpu": null, ...}
# in a few seconds. Progress goes to stderr; GPU_CHECK_SECONDS (default 280) bounds the whole run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
limit="${GPU_CHECK_SECONDS:-280}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
exec timeout --kill-after=10 "$limit" "$python" "$here/gpu_check.py" --budget "$((limit - 25))" "$@"
