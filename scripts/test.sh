#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite through CTest. CI runs this, once
# per supported LibTorch.
#
#   scripts/test.sh                 # Debian's LibTorch 1.13: everything (ctest ~6 min on 2 cores)
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
# Tests run one at a time: each already uses every core, and two OpenMP pools spinning on the
# same cores slow each other down many times over.
ctest --test-dir "${BUILD_DIR:-$(torch_build_dir "$torch")}" --output-on-failure "${rest[@]}"
