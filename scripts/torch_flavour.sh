# Sourced by setup.sh, build.sh and test.sh: which LibTorch a build uses, and where it lives.
#   debian  Debian 12's libtorch-dev (LibTorch 1.13, CPU only): the default, build dir build/
#   pip     LibTorch 2.x from the PyPI torch wheel (CUDA-enabled), pinned here: build-torch-pip/
#   DIR     any LibTorch root (the directory with lib/ and include/): build-torch-custom/

# The PyPI torch the pip flavour pins: the version the GPU machine's PyTorch ships (2.11, CUDA 13.0).
TORCH_PIP_VERSION=2.11.0
TRANSFORMERS_VERSION=5.24.0  # the Hugging Face reference of the GPT-2 import tests (LibTorch 2.x venv only)
PEFT_VERSION=0.22.0          # the reference of the LoRA adapters' PEFT export and import (same venv)

torch_pip_venv() {
    echo "${RLHF_TORCH_PIP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlhf/torch-$TORCH_PIP_VERSION}"
}

# The LibTorch root of the pip flavour's virtual environment, without importing torch (seconds).
torch_pip_root() {
    local venv
    venv=$(torch_pip_venv)
    "$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])' 2>/dev/null ||
        { echo "no torch in $venv: run scripts/setup.sh --torch pip" >&2; return 1; }
}

# Splits the arguments into $torch (the value of --torch; debian without one) and the array
# $rest (everything else, in order).
split_torch_flag() {
    torch=debian
    rest=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --torch) torch=${2:?--torch needs debian, pip or a LibTorch directory}; shift ;;
            *) rest+=("$1") ;;
        esac
        shift
    done
}

torch_build_dir() {  # flavour -> default build directory
    case "$1" in
        debian) echo build ;;
        pip) echo build-torch-pip ;;
        *) echo build-torch-custom ;;
    esac
}
