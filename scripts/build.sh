#!/usr/bin/env bash
# Configure and build rlhf.cpp (Release by default).
#
#   scripts/build.sh                    # Debian's LibTorch 1.13: build/rlhf, build/tests/rlhf_tests
#   scripts/build.sh --torch pip        # LibTorch 2.x of the PyPI wheel (scripts/setup.sh --torch pip
#                                       # installs it): build-torch-pip/
#   scripts/build.sh --torch /opt/libtorch   # any LibTorch root (lib/, include/): build-torch-custom/
#   scripts/build.sh --target rlhf      # other arguments go to `cmake --build`
#   BUILD_TYPE=Debug scripts/build.sh
#   SANITIZE=1 BUILD_DIR=build-asan scripts/build.sh   # AddressSanitizer + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_flavour.sh

split_torch_flag "$@"   # -> $torch, and ${rest[@]} for cmake --build

cmake_args=()
case "$torch" in
    debian) ;;
    pip) cmake_args+=(-DCMAKE_PREFIX_PATH="$(torch_pip_root)") ;;
    *)
        [ -d "$torch/share/cmake/Torch" ] ||
            { echo "build.sh: $torch is not a LibTorch root (no share/cmake/Torch inside)" >&2; exit 2; }
        cmake_args+=(-DCMAKE_PREFIX_PATH="$(cd "$torch" && pwd)") ;;
esac
# A CUDA LibTorch's CMake config looks for the CUDA toolkit; Debian does not put it on PATH.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=$PATH:/usr/local/cuda/bin
fi

BUILD_DIR=${BUILD_DIR:-$(torch_build_dir "$torch")}
BUILD_TYPE=${BUILD_TYPE:-Release}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# ccache keeps compiled objects under ~/.cache/ccache: a rebuild (a new build dir, a switch of
# branch) recompiles only the unity batches whose files changed. A clone in another folder does
# not hit: the unity batches include their sources by absolute path, and the build-directory
# paths in -D values (RLHF_SPM_SHIM_BUILD_PATH, the tests' RLHF_*_DIR) and the PCH's differ.
# A build from nothing takes ~7 minutes on 2 cores (CMakeLists.txt: RLHF_UNITY_BUILD). The
# sloppiness lets it cache the objects that use the precompiled <torch/torch.h> (the PCH's own
# timestamps would miss every time).
if command -v ccache >/dev/null; then
    cmake_args+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
    export CCACHE_BASEDIR=$PWD   # -I and source paths under the clone hashed relative to it
    export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
fi
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "${cmake_args[@]}" \
        -DRLHF_SANITIZE="${SANITIZE:-OFF}" -DRLHF_WARNINGS_AS_ERRORS="${WERROR:-OFF}"
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)" "${rest[@]}"
