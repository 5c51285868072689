// YAML -> RunConfig, with --set overrides, unknown-key rejection and validation that reports
// every problem at once with file:line (or the --set that caused it).
//
//   RunConfig cfg = load_config("configs/pretrain/shakespeare_char.yaml", {"train.max_steps=100"});
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "rlhf/config/config.h"

namespace rlhf {

// Reads `path`, applies "a.b=c" overrides in order, fills presets, validates. Throws rlhf::Error
// whose message lists every problem found, one per line.
RunConfig load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});

// Same, from YAML text (for tests and for configs stored in checkpoints).
RunConfig load_config_text(const std::string& yaml, const std::string& source,
                           const std::vector<std::string>& overrides = {});

// The resolved configuration as YAML; load_config_text(dump_config(c)) == c.
std::string dump_config(const RunConfig& cfg);

// Every YAML key with its default and meaning, for docs/config.md and `rlhf config keys`.
struct ConfigKeyDoc {
    std::string key, default_value, doc;
};
std::vector<ConfigKeyDoc> config_key_docs();

// The same as the Markdown table docs/config.md holds (`rlhf config keys --markdown`); a test
// checks the docs carry exactly this text.
std::string config_keys_markdown();

}  // namespace rlhf
