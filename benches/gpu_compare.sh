#!/usr/bin/env bash
# The engine through Vulkan against PyTorch CUDA (eager and torch.compile) on one NVIDIA GPU,
# at the specification's sizes (B = 50, T = 50; behaviour from all 2,500 posterior states,
# H = 15; 16 x 1,000 imagined steps; 10 x 512^3 matmuls), with the fp32 floor (the step's
# matmul + conv FLOPs / the GPU's fp32 peak) beside each row. First `rssm tune` measures the
# kernel choices on this GPU at those shapes (its table in tune.md); the benchmark runs with
# them and prints them above its timings. Under 6 minutes.
#
# Needs: a prebuilt rssm binary (`cargo build --release`), the NVIDIA driver with its Vulkan
# ICD (`rssm info` must name the GPU), and Python with PyTorch for CUDA.
#
#   benches/gpu_compare.sh [RSSM_BINARY]        # default target/release/rssm
#
# Environment: PYTHON (default python3), PEAK_TFLOPS (default: from the GPU's SM count, FP32
# lanes per SM and top clock), OUT (result folder, default gpu-compare), REPS (default 5),
# TUNE_BUDGET (seconds for `rssm tune`, default 60), RSSM_CACHE_DIR (where the tuning is kept,
# default OUT/cache: measured afresh for each comparison).
set -euo pipefail

RSSM=${1:-target/release/rssm}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-gpu-compare}
REPS=${REPS:-5}
TUNE_BUDGET=${TUNE_BUDGET:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
export RSSM_CACHE_DIR=${RSSM_CACHE_DIR:-$OUT/cache}
export RSSM_TUNE=auto

nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$OUT/nvidia-smi.csv"
"$RSSM" --adapter nvidia info > "$OUT/rssm-info.txt" || {
    echo "rssm sees no NVIDIA adapter: install the driver's Vulkan ICD (libnvidia-gl / nvidia_icd.json)," >&2
    echo "or point VK_ICD_FILENAMES at it; 'vulkaninfo --summary' should list the GPU." >&2
    exit 1
}
# First the device profile the adapter is closest to (with any limit it offers less of than
# that class: `rssm --device-profile NAME info` and tests/profiles.rs run the engine under
# it on any machine), then the whole report: limits, features, the kernel choices and
# anything the device cannot run, before a benchmark meets it.
grep '^closest' "$OUT/rssm-info.txt" || echo "closest      (not reported by this rssm binary)"
cat "$OUT/rssm-info.txt"
if grep -q '^cannot       the engine cannot run here' "$OUT/rssm-info.txt"; then
    echo "rssm cannot run on this adapter (the 'cannot' lines above name the limit); stopping." >&2
    exit 1
fi

if [ -z "${PEAK_TFLOPS:-}" ]; then
    # FP32 peak = SMs x FP32 lanes per SM x 2 (FMA) x top SM clock.
    PEAK_TFLOPS=$("$PYTHON" - <<'EOF'
import subprocess, torch
p = torch.cuda.get_device_properties(0)
lanes = 64 if (p.major, p.minor) in [(6, 0), (7, 0), (7, 5), (8, 0)] else 128
mhz = float(subprocess.check_output(
    ["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"]).split()[0])
print(f"{p.multi_processor_count * lanes * 2 * mhz * 1e6 / 1e12:.1f}")
EOF
)
fi
echo "fp32 peak: $PEAK_TFLOPS TFLOP/s" | tee "$OUT/peak.txt"

# 0. The kernel choices measured on this GPU at the benchmark's shapes, cached for step 1.
timeout $((TUNE_BUDGET + 60)) "$RSSM" --adapter nvidia tune --preset dreamer --batch 50 \
    --seq-len 50 --horizon 15 --budget "$TUNE_BUDGET" | tee "$OUT/tune.md"

# 1. The engine with those choices, with GPU timestamps (about a minute).
timeout 110 "$RSSM" --adapter nvidia bench --json --presets dreamer --batch 50 --seq-len 50 \
    --horizon 15 --imagine-starts 16 --imagine-steps 1000 --reps "$REPS" > "$OUT/rssm.json"
# 2. PyTorch eager and compiled on the same GPU, then the side-by-side table.
timeout 180 "$PYTHON" "$HERE/pytorch/compare.py" --engine-json "$OUT/rssm.json" --device cuda \
    --batch 50 --seq-len 50 --horizon 15 --imagine-starts 16 --imagine-steps 1000 \
    --reps "$REPS" --peak-tflops "$PEAK_TFLOPS" --out-json "$OUT/compare.json" | tee "$OUT/table.md"
