// libFuzzer's entry point for one target, chosen at compile time (RLHF_FUZZ_TARGET, a function of
// targets.h); scripts/fuzz.sh builds one binary per target.
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    rlhf::fuzz::RLHF_FUZZ_TARGET(data, size);
    return 0;
}
