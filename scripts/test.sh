#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite through CTest. CI runs this, once
# per supported LibTorch.
#
#   scripts/test.sh                 # Debian's LibTorch 1.13: everything (ctest ~8 min on 2 cores)
#   scripts/test.sh --torch pip     # the same suite on LibTorch 2.x from PyPI (CUDA build, run on the CPU)
#   scripts/test.sh -L unit         # other arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_flavour.sh

split_torch_flag "$@"   # -> $torch, and ${rest[@]} for ctest
case "$torch" in
    debian|pip) scripts/setup.sh --torch "$torch" ;;
    *) scripts/setup.sh ;;  # a LibTorch of your own: only the Debian packages
esac
scripts/build.sh --torch "$torch"
# One slot per core: unit tests share the cores, each integration test takes two slots (every
# core here) since two OpenMP pools spinning on the same cores slow each other down many times
# over (tests/CMakeLists.txt).
ctest --test-dir "${BUILD_DIR:-$(torch_build_dir "$torch")}" --output-on-failure --parallel "$(nproc)" "${rest[@]}"
