#!/usr/bin/env bash
# CI kernel check, no GPU or driver needed: installs NVRTC + ptxas 13.0.88 from PyPI into a
# cache folder (reused across runs), compiles every kernel for sm_80 and sm_90a through the
# backend's own NVRTC path (kernels/examples/check_kernels.rs), runs `ptxas -v` on each, prints
# a resource table and fails on a compile error or a spill in a kernel marked spill-free.
# Env: SWERL_CUDA_CACHE (default ~/.cache/swerl-cuda), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=13.0.88
CACHE="${SWERL_CUDA_CACHE:-$HOME/.cache/swerl-cuda}"
PKGS="$CACHE/pkgs-$VERSION"
CU="$PKGS/nvidia/cu13"
PY="${PYTHON:-python3}"

if [[ ! -x "$CU/bin/ptxas" || ! -e "$CU/lib/libnvrtc.so.13" ]]; then
    echo "check-kernels: installing nvidia-cuda-nvrtc/nvcc $VERSION into $PKGS"
    rm -rf "$PKGS.tmp"
    # --no-deps: the nvcc wheel's ptxas is self-contained; its listed deps would pull newer CUDA.
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --target "$PKGS.tmp" \
        "nvidia-cuda-nvrtc==$VERSION" "nvidia-cuda-nvcc==$VERSION"
    rm -rf "$PKGS"
    mv "$PKGS.tmp" "$PKGS"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Dev profile: shares the dependency builds of the test run that precedes it in .ci/run.
cargo build --quiet -p kernels --features cuda --example check_kernels
TARGET="${CARGO_TARGET_DIR:-target}"

# A fresh PTX cache, so every run really goes through NVRTC.
SWERL_KERNEL_CACHE="$WORK/cache" LD_LIBRARY_PATH="$CU/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$TARGET/debug/examples/check_kernels" --ptxas "$CU/bin/ptxas" --out "$WORK/ptx" \
    --arch sm_80 --arch sm_90a
