#include "rlhf/core/cpu_features.h"

#include <fstream>
#include <string>

namespace rlhf {

bool cpu_has_native_bf16() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("flags", 0) != 0) continue;
        return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
    }
    return true;  // no /proc/cpuinfo (not Linux): nothing to say
}

}  // namespace rlhf
