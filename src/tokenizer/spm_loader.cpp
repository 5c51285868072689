#include "rlhf/tokenizer/spm_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "rlhf/core/error.h"

namespace rlhf {

namespace {

constexpr const char* kShimName = "librlhf_spm_shim.so";

std::vector<std::filesystem::path> candidate_paths() {
    std::vector<std::filesystem::path> paths;
    if (const char* env = std::getenv("RLHF_SPM_SHIM")) paths.emplace_back(env);
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        paths.push_back(exe.parent_path() / kShimName);
        paths.push_back(exe.parent_path().parent_path() / kShimName);  // tests/ below the build dir
        paths.push_back(exe.parent_path().parent_path() / "lib" / "rlhf" / kShimName);
    }
#ifdef RLHF_SPM_SHIM_BUILD_PATH
    paths.emplace_back(RLHF_SPM_SHIM_BUILD_PATH);
#endif
    return paths;
}

template <typename Fn>
void bind(void* handle, const char* name, Fn& fn, const std::string& path) {
    fn = reinterpret_cast<Fn>(dlsym(handle, name));
    if (!fn) throw Error(std::string("tokenizer shim lacks symbol ") + name, path, "rebuild the project");
}

SpmApi load_api() {
    std::string tried;
    for (const auto& path : candidate_paths()) {
        if (!std::filesystem::exists(path)) {
            tried += " " + path.string();
            continue;
        }
        // Its own link namespace: SentencePiece's protobuf never meets LibTorch's.
        void* handle = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) throw Error(std::string("cannot load tokenizer shim: ") + dlerror(), path.string(),
                                 "run scripts/setup.sh to install libsentencepiece");
        SpmApi api{};
        const std::string p = path.string();
        bind(handle, "rlhf_spm_train", api.train, p);
        bind(handle, "rlhf_spm_free", api.free, p);
        bind(handle, "rlhf_spm_load", api.load, p);
        bind(handle, "rlhf_spm_destroy", api.destroy, p);
        bind(handle, "rlhf_spm_info", api.info, p);
        bind(handle, "rlhf_spm_encode", api.encode, p);
        bind(handle, "rlhf_spm_decode", api.decode, p);
        bind(handle, "rlhf_spm_piece", api.piece, p);
        bind(handle, "rlhf_spm_piece_to_id", api.piece_to_id, p);
        return api;  // never dlclose'd: tokenizers live until exit
    }
    throw Error(std::string(kShimName) + " not found (tried:" + tried + ")", "",
                "build the project (scripts/build.sh) or set RLHF_SPM_SHIM to the library's path");
}

}  // namespace

const SpmApi& spm_api() {
    static std::once_flag once;
    static SpmApi api;
    static std::string failure;
    std::call_once(once, [] {
        try {
            api = load_api();
        } catch (const Error& e) {
            failure = e.one_line();
        }
    });
    if (!failure.empty()) throw Error(failure);
    return api;
}

}  // namespace rlhf
