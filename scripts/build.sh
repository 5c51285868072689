#!/usr/bin/env bash
# Configure and build rlhf.cpp (Release by default) into build/.
#
#   scripts/build.sh              # Release: build/rlhf, build/tests/rlhf_tests
#   scripts/build.sh --target rlhf   # extra arguments go to `cmake --build`
#   BUILD_TYPE=Debug scripts/build.sh
#   SANITIZE=1 BUILD_DIR=build-asan scripts/build.sh   # AddressSanitizer + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
        -DRLHF_SANITIZE="${SANITIZE:-OFF}" -DRLHF_WARNINGS_AS_ERRORS="${WERROR:-OFF}"
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)" "$@"
