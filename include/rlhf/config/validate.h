// The rules between keys that need no file: a model's shape, and what each stage requires of the
// others (pretrain needs text or shards, ppo one reward source, …). config/load.cpp runs them after
// each key has been read and range-checked, and reports every problem at once with its key's
// file:line, so `rlhf config show` refuses what `rlhf train` would. Rules that need a file (a
// checkpoint's shape, a tokenizer's size) stay with the stage that opens it.
#pragma once

#include <string>
#include <vector>

#include "rlhf/config/config.h"

namespace rlhf {

struct ConfigProblem {
    std::string key;      // the key to fix, e.g. "ppo.group_size"
    std::string message;  // what is wrong, e.g. "1 with ppo.advantage: grpo; a group baseline needs >= 2 …"
};

std::vector<ConfigProblem> config_problems(const RunConfig& cfg);

}  // namespace rlhf
