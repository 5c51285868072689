#include "targets.h"

#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "rlhf/checkpoint/safetensors.h"
#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/data/comparisons.h"
#include "rlhf/data/sft_examples.h"
#include "rlhf/data/token_shards.h"
#include "rlhf/tokenizer/gpt2_bpe.h"

namespace rlhf::fuzz {

namespace {

// The readers take paths: inputs go to files in a directory of this process's own, removed at exit.
struct ScratchDir {
    std::filesystem::path path = std::filesystem::temp_directory_path() / ("rlhf-fuzz-" + std::to_string(::getpid()));
    ScratchDir() { std::filesystem::create_directories(path); }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

std::filesystem::path scratch(const std::string& name, std::string_view bytes) {
    static const ScratchDir dir;
    const auto path = dir.path / name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
    std::fclose(f);
    return path;
}

std::string_view as_text(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

// Runs `fn`; rlhf::Error is the expected way to refuse an input.
template <typename Fn>
void refused_or_ok(Fn&& fn) {
    try {
        fn();
    } catch (const Error&) {
    }
}

}  // namespace

void config(const uint8_t* data, size_t size) {
    const std::string text(as_text(data, size));
    std::string yaml = text;
    std::vector<std::string> overrides;
    if (const size_t cut = text.find("\n---set\n"); cut != std::string::npos) {
        yaml = text.substr(0, cut + 1);
        std::string rest = text.substr(cut + 8);
        for (size_t start = 0; start <= rest.size();) {
            const size_t end = std::min(rest.find('\n', start), rest.size());
            overrides.push_back(rest.substr(start, end - start));
            start = end + 1;
        }
    }
    refused_or_ok([&] {
        const RunConfig cfg = load_config_text(yaml, "fuzz.yaml", overrides);
        const std::string dumped = dump_config(cfg);
        if (dump_config(load_config_text(dumped, "dumped.yaml")) != dumped) {
            std::fprintf(stderr, "config does not round-trip:\n%s\n", dumped.c_str());
            std::abort();
        }
    });
}

void records(const uint8_t* data, size_t size) {
    if (size == 0) return;
    static const char* kNames[] = {"in.jsonl", "in.json", "in.jsonl.gz"};
    const char* name = kNames[data[0] % 3];
    std::string_view body = as_text(data + 1, size - 1);
    std::filesystem::path path;
    if (data[0] % 3 == 2 && (data[0] & 0x80)) {
        // Half the .gz inputs are real gzip of the body, so the JSON readers behind it get fuzzed too.
        uLongf cap = compressBound(static_cast<uLong>(body.size())) + 32;
        std::string gz(cap, '\0');
        z_stream z{};
        if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
        z.avail_in = static_cast<uInt>(body.size());
        z.next_out = reinterpret_cast<Bytef*>(gz.data());
        z.avail_out = static_cast<uInt>(gz.size());
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
        gz.resize(z.total_out);
        deflateEnd(&z);
        path = scratch(name, gz);
    } else {
        path = scratch(name, body);
    }
    for (bool skip : {false, true}) {
        SftReadOptions sft;
        sft.skip_bad = skip;
        refused_or_ok([&] { read_sft_examples({path.string()}, sft); });
        ComparisonReadOptions cmp;
        cmp.skip_bad = skip;
        refused_or_ok([&] { read_comparisons({path.string()}, cmp); });
    }
}

void safetensors(const uint8_t* data, size_t size) {
    const auto path = scratch("in.safetensors", as_text(data, size));
    refused_or_ok([&] { load_safetensors(path); });
}

void token_shard(const uint8_t* data, size_t size) {
    const auto path = scratch("train_000000.bin", as_text(data, size));
    refused_or_ok([&] {
        Shard shard(path);
        std::vector<int64_t> tokens(static_cast<size_t>(std::min<int64_t>(shard.size(), 1 << 20)));
        shard.read(0, static_cast<int64_t>(tokens.size()), tokens.data());
    });
}

void gpt2_tokenizer(const uint8_t* data, size_t size) {
    const std::string_view text = as_text(data, size);
    refused_or_ok([&] {
        const size_t nul = text.find('\0');
        const Gpt2Bpe bpe = nul == std::string_view::npos
                                ? Gpt2Bpe::from_tokenizer_json(text, "tokenizer.json")
                                : Gpt2Bpe(text.substr(0, nul), "vocab.json", text.substr(nul + 1), "merges.txt");
        for (const auto& t : {std::string_view("Hello world! It's 2026.\n  x"), text.substr(0, 256)}) {
            for (int32_t id : bpe.encode(t)) {
                if (id < 0 || id >= bpe.size()) std::abort();  // an id outside the vocabulary
            }
        }
    });
}

const std::vector<Target>& targets() {
    static const std::vector<Target> all = {{"config", config},
                                            {"records", records},
                                            {"safetensors", safetensors},
                                            {"token_shard", token_shard},
                                            {"gpt2_tokenizer", gpt2_tokenizer}};
    return all;
}

}  // namespace rlhf::fuzz
