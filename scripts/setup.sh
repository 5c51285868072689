#!/usr/bin/env bash
# Install every build and run dependency of rlhf.cpp from Debian 12 packages.
#
#   scripts/setup.sh              # idempotent: installs only what is missing
#   scripts/setup.sh --torch pip  # also LibTorch 2.x: the PyPI torch wheel (CUDA), pinned below
#
# Selects OpenBLAS (OpenMP flavour) as the system BLAS/LAPACK: Debian's LibTorch otherwise
# runs matmuls on the reference BLAS, about 30x slower.
#
# The pip flavour: torch==$TORCH_PIP_VERSION goes into a virtual environment outside the source
# tree, ${RLHF_TORCH_PIP_DIR:-~/.cache/rlhf/torch-<version>}, shared by every clone; its LibTorch
# (headers, libraries, CMake config) is what `scripts/build.sh --torch pip` builds against, and
# its CUDA libraries come with it (nvidia-* wheels, ~4.6 GB in all). Building against a CUDA
# LibTorch needs the CUDA toolkit (nvcc) at configure time, even on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_flavour.sh

split_torch_flag "$@"
[ ${#rest[@]} -eq 0 ] || { echo "setup.sh: unknown option '${rest[0]}' (use --torch debian|pip)" >&2; exit 2; }
case "$torch" in
    debian|pip) ;;
    *) echo "setup.sh: --torch is debian or pip (a LibTorch of your own needs no setup: scripts/build.sh --torch DIR)" >&2; exit 2 ;;
esac

packages=(
    build-essential cmake ninja-build pkg-config git
    ccache                  # rebuilds after a change take minutes, not a full build (scripts/build.sh)
    libtorch-dev            # LibTorch 1.13 (CPU), with c10d/Gloo
    libgloo-dev             # Gloo headers for ProcessGroupGloo
    libsentencepiece-dev    # tokenizer (loaded through a dlmopen shim, see src/tokenizer/)
    libblas-dev             # CBLAS header for the fused CPU attention kernel
    libyaml-cpp-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
    zlib1g-dev              # reading gzipped JSONL directly (HH-RLHF ships *.jsonl.gz)
    libicu-dev              # Unicode classes for GPT-2's byte-level BPE pre-tokeniser, NFC
    libpcre2-dev            # the split regexes of Hugging Face tokenizer.json files (Qwen, Llama-3)
    catch2                  # v2 on Debian 12
    libopenblas0-openmp     # fast BLAS for LibTorch on CPU
    python3-torch python3-numpy  # /usr/bin/python3 reference computations in tests
    python3-matplotlib      # scripts/plot_metrics.py: the demo's PNG curves
)
[ "$torch" = pip ] && packages+=(python3-venv)   # the virtual environment of the PyPI torch

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "setup: all packages present"
fi

# Point the BLAS and LAPACK alternatives at OpenBLAS-openmp (idempotent).
arch_dir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
    target="$arch_dir/openblas-openmp/$lib"
    name="$lib-$(basename "$arch_dir")"
    if [ -e "$target" ] && [ "$(readlink -f "/etc/alternatives/$name" 2>/dev/null)" != "$target" ]; then
        as_root update-alternatives --set "$name" "$target"
    fi
done

if [ "$torch" = pip ]; then
    venv=$(torch_pip_venv)
    if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('torch') != '$TORCH_PIP_VERSION')" 2>/dev/null; then
        echo "setup: torch $TORCH_PIP_VERSION present in $venv"
    else
        echo "setup: installing torch==$TORCH_PIP_VERSION from PyPI into $venv (~4.6 GB with its CUDA libraries)"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_PIP_VERSION"
    fi
    # Hugging Face transformers: the reference the GPT-2 import is tested against (tests/reference/hf_gpt2.py).
    if ! "$venv/bin/python" -c "import transformers" 2>/dev/null; then
        echo "setup: installing transformers==$TRANSFORMERS_VERSION from PyPI into $venv (test reference)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "transformers==$TRANSFORMERS_VERSION"
    fi
    # PEFT: the reference our LoRA adapters are exported to and read from (tests/reference/peft_reference.py).
    if ! "$venv/bin/python" -c "import peft" 2>/dev/null; then
        echo "setup: installing peft==$PEFT_VERSION from PyPI into $venv (test reference)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "peft==$PEFT_VERSION"
    fi
fi
