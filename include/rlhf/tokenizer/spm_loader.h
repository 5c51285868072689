// Loads librlhf_spm_shim.so into its own link namespace (dlmopen LM_ID_NEWLM) once per process
// and hands out its C entry points. See spm_shim_api.h for why.
#pragma once

#include "rlhf/tokenizer/spm_shim_api.h"

namespace rlhf {

struct SpmApi {
    decltype(&rlhf_spm_train) train;
    decltype(&rlhf_spm_free) free;
    decltype(&rlhf_spm_load) load;
    decltype(&rlhf_spm_destroy) destroy;
    decltype(&rlhf_spm_info) info;
    decltype(&rlhf_spm_encode) encode;
    decltype(&rlhf_spm_decode) decode;
    decltype(&rlhf_spm_piece) piece;
    decltype(&rlhf_spm_piece_to_id) piece_to_id;
};

// The shim's functions; throws rlhf::Error naming the paths it tried if the shim is missing.
// Search order: $RLHF_SPM_SHIM, beside the executable, ../lib/rlhf/, the build tree.
const SpmApi& spm_api();

}  // namespace rlhf
