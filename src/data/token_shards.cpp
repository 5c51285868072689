#include "rlhf/data/token_shards.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/splitmix64.h"
#include "rlhf/tokenizer/tokenizer.h"

namespace rlhf {

namespace {

template <typename T>
void put(std::string& buf, size_t offset, T value) {
    std::memcpy(buf.data() + offset, &value, sizeof(T));
}

template <typename T>
T get(const unsigned char* buf, size_t offset) {
    T value;
    std::memcpy(&value, buf + offset, sizeof(T));
    return value;
}

// Uniform integer in [0, n) without modulo bias worth mentioning (Lemire's multiply-shift).
uint64_t below(uint64_t& state, uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(splitmix64(state)) * n) >> 64);
}

std::string shard_name(const std::string& split, size_t index) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%s_%06zu.bin", split.c_str(), index);
    return buf;
}

}  // namespace

void write_shard(const std::filesystem::path& path, const std::vector<int32_t>& tokens, uint32_t vocab_size,
                 uint64_t tokenizer_fingerprint) {
    const uint32_t token_bytes = vocab_size <= 65536 ? 2 : 4;
    std::string buf(kShardHeaderBytes + tokens.size() * token_bytes, '\0');
    unsigned char* body = reinterpret_cast<unsigned char*>(buf.data() + kShardHeaderBytes);
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (token_bytes == 2) {
            auto t = static_cast<uint16_t>(tokens[i]);
            std::memcpy(body + 2 * i, &t, 2);
        } else {
            auto t = static_cast<uint32_t>(tokens[i]);
            std::memcpy(body + 4 * i, &t, 4);
        }
    }
    std::memcpy(buf.data(), kShardMagic, 8);
    put<uint32_t>(buf, 8, kShardVersion);
    put<uint32_t>(buf, 12, token_bytes);
    put<uint64_t>(buf, 16, tokens.size());
    put<uint32_t>(buf, 24, vocab_size);
    put<uint64_t>(buf, 32, tokenizer_fingerprint);
    put<uint64_t>(buf, 40, fnv1a64(body, tokens.size() * token_bytes));
    atomic_write(path, buf);
}

Shard::Shard(const std::filesystem::path& path) : file_(path) {
    const std::string where = path.string();
    const std::string hint = "re-create it with `rlhf data prepare`";
    if (file_.size() < kShardHeaderBytes) throw Error("truncated token shard (no complete header)", where, hint);
    const unsigned char* p = file_.data();
    if (std::memcmp(p, kShardMagic, 8) != 0) throw Error("not a token shard (bad magic bytes)", where, hint);
    header_.version = get<uint32_t>(p, 8);
    header_.token_bytes = get<uint32_t>(p, 12);
    header_.n_tokens = get<uint64_t>(p, 16);
    header_.vocab_size = get<uint32_t>(p, 24);
    header_.tokenizer_fingerprint = get<uint64_t>(p, 32);
    header_.checksum = get<uint64_t>(p, 40);
    if (header_.version != kShardVersion) {
        throw Error("unsupported shard format version " + std::to_string(header_.version) + " (this build reads " +
                        std::to_string(kShardVersion) + ")",
                    where, hint);
    }
    if (header_.token_bytes != 2 && header_.token_bytes != 4) {
        throw Error("corrupted shard header (token size " + std::to_string(header_.token_bytes) + ")", where, hint);
    }
    // Compared by division: n_tokens * token_bytes can wrap around 64 bits (found by fuzzing: a
    // header promising 2^63 + 5 tokens matched a 74-byte file).
    const uint64_t body_bytes = file_.size() - kShardHeaderBytes;
    if (body_bytes % header_.token_bytes != 0 || header_.n_tokens != body_bytes / header_.token_bytes) {
        throw Error("truncated or padded token shard: " + std::to_string(body_bytes) + " bytes of tokens, header promises " +
                        std::to_string(header_.n_tokens) + " tokens of " + std::to_string(header_.token_bytes) + " bytes",
                    where, hint);
    }
    if (fnv1a64(p + kShardHeaderBytes, file_.size() - kShardHeaderBytes) != header_.checksum) {
        throw Error("corrupted token shard (checksum mismatch)", where, hint);
    }
}

void Shard::read(int64_t start, int64_t n, int64_t* out) const {
    const unsigned char* body = file_.data() + kShardHeaderBytes;
    if (header_.token_bytes == 2) {
        for (int64_t i = 0; i < n; ++i) out[i] = get<uint16_t>(body, static_cast<size_t>(2 * (start + i)));
    } else {
        for (int64_t i = 0; i < n; ++i) out[i] = get<uint32_t>(body, static_cast<size_t>(4 * (start + i)));
    }
}

TokenShards::TokenShards(const std::filesystem::path& dir, const std::string& split, uint64_t expected_fingerprint)
    : where_(dir.string()) {
    if (!std::filesystem::is_directory(dir)) {
        throw Error("token shard directory not found", dir.string(), "create it with `rlhf data prepare`");
    }
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(split + "_", 0) == 0 && entry.path().extension() == ".bin") paths.push_back(entry.path());
    }
    std::sort(paths.begin(), paths.end());
    if (paths.empty() && shards_listed_tokens(dir, split) > 0) {
        throw Error("meta.json lists " + std::to_string(shards_listed_tokens(dir, split)) + " " + split +
                        " tokens but there are no " + split + "_*.bin shards: they were deleted or moved",
                    dir.string(), "re-create the directory with `rlhf data prepare`");
    }
    if (paths.empty()) {
        throw Error("no " + split + "_*.bin shards", dir.string(),
                    split == "val" ? "prepare the data with --val-fraction > 0" : "run `rlhf data prepare`");
    }
    for (const auto& path : paths) {
        auto shard = std::make_unique<Shard>(path);
        if (expected_fingerprint != 0 && shard->header().tokenizer_fingerprint != expected_fingerprint) {
            throw Error("shard was made with a different tokenizer than the one configured", path.string(),
                        "re-run `rlhf data prepare` with this tokenizer, or point tokenizer.path at the one used");
        }
        vocab_size_ = std::max(vocab_size_, shard->header().vocab_size);
        total_tokens_ += shard->size();
        shards_.push_back(std::move(shard));
    }
    // A shard deleted or copied in from elsewhere would otherwise go unnoticed: training would
    // run on part of the data, or on someone else's.
    if (const int64_t listed = shards_listed_tokens(dir, split); listed >= 0 && listed != total_tokens_) {
        throw Error("the " + split + "_*.bin shards hold " + std::to_string(total_tokens_) + " tokens but meta.json lists " +
                        std::to_string(listed) + ": a shard is missing or does not belong here",
                    dir.string(), "re-create the directory with `rlhf data prepare`");
    }
}

int64_t shards_listed_tokens(const std::filesystem::path& dir, const std::string& split) {
    const auto path = dir / "meta.json";
    if (!std::filesystem::exists(path)) return -1;
    try {
        const auto meta = nlohmann::json::parse(read_file(path));
        const std::string key = split + "_tokens";
        return meta.contains(key) && meta.at(key).is_number_integer() ? meta.at(key).get<int64_t>() : -1;
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("unreadable meta.json: ") + e.what(), path.string(),
                    "re-create the directory with `rlhf data prepare`");
    }
}

int64_t TokenShards::num_windows(int64_t window) const {
    int64_t n = 0;
    for (const auto& s : shards_) n += std::max<int64_t>(0, s->size() - window + 1);
    return n;
}

torch::Tensor TokenShards::batch(int64_t batch_size, int64_t block_size, uint64_t seed, uint64_t batch_index) const {
    const int64_t window = block_size + 1;
    const int64_t n_windows = num_windows(window);
    if (n_windows <= 0) {
        throw Error("split has " + std::to_string(total_tokens_) + " tokens, fewer than block_size + 1 = " +
                        std::to_string(window),
                    where_, "add text, lower data.val_fraction's share, or lower model.block_size");
    }
    auto out = torch::empty({batch_size, window}, torch::kLong);
    int64_t* dst = out.data_ptr<int64_t>();
    uint64_t state = seed ^ (batch_index * 0xd1b54a32d192ed03ULL);
    for (int64_t b = 0; b < batch_size; ++b) {
        auto u = static_cast<int64_t>(below(state, static_cast<uint64_t>(n_windows)));
        for (const auto& s : shards_) {  // find the shard holding window u
            const int64_t in_shard = std::max<int64_t>(0, s->size() - window + 1);
            if (u < in_shard) {
                s->read(u, window, dst + b * window);
                break;
            }
            u -= in_shard;
        }
    }
    return out;
}

// Shard s holds E_s = floor((n_s - 1) / T) windows of T+1 tokens at stride T; the slack
// (n_s - 1) - E_s * T, always < T, is where this epoch's phase offset comes from.
int64_t TokenShards::windows_per_epoch(int64_t block_size) const {
    int64_t n = 0;
    for (const auto& s : shards_) n += (s->size() - 1) / block_size;
    return n;
}

void TokenShards::ensure_epoch(EpochOrder& e, int64_t block_size, uint64_t seed, uint64_t epoch) const {
    if (e.seed == seed && e.epoch == epoch && e.block_size == block_size) return;
    const int64_t n = windows_per_epoch(block_size);
    e.order.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) e.order[static_cast<size_t>(i)] = i;
    uint64_t state = seed ^ (epoch * 0x9e3779b97f4a7c15ULL) ^ 0x5851f42d4c957f2dULL;
    for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
        auto j = static_cast<int64_t>(below(state, static_cast<uint64_t>(i + 1)));
        std::swap(e.order[static_cast<size_t>(i)], e.order[static_cast<size_t>(j)]);
    }
    e.offsets.clear();
    for (const auto& s : shards_) {
        const int64_t slack = (s->size() - 1) - ((s->size() - 1) / block_size) * block_size;
        e.offsets.push_back(static_cast<int64_t>(below(state, static_cast<uint64_t>(slack + 1))));
    }
    e.seed = seed;
    e.epoch = epoch;
    e.block_size = block_size;
}

torch::Tensor TokenShards::epoch_batch(int64_t batch_size, int64_t block_size, uint64_t seed,
                                       uint64_t batch_index) const {
    const int64_t per_epoch = windows_per_epoch(block_size);
    if (per_epoch <= 0) {
        throw Error("split has " + std::to_string(total_tokens_) + " tokens, fewer than block_size + 1 = " +
                        std::to_string(block_size + 1),
                    where_, "add text, lower data.val_fraction's share, or lower model.block_size");
    }
    const int64_t window = block_size + 1;
    auto out = torch::empty({batch_size, window}, torch::kLong);
    int64_t* dst = out.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch_size; ++b) {
        const uint64_t sample = batch_index * static_cast<uint64_t>(batch_size) + static_cast<uint64_t>(b);
        ensure_epoch(epoch_, block_size, seed, sample / static_cast<uint64_t>(per_epoch));
        int64_t k = epoch_.order[static_cast<size_t>(sample % static_cast<uint64_t>(per_epoch))];
        for (size_t s = 0; s < shards_.size(); ++s) {  // find the shard holding window k
            const int64_t in_shard = (shards_[s]->size() - 1) / block_size;
            if (k < in_shard) {
                shards_[s]->read(epoch_.offsets[s] + k * block_size, window, dst + b * window);
                break;
            }
            k -= in_shard;
        }
    }
    return out;
}

size_t encode_piece_end(std::string_view text, size_t pos) {
    constexpr size_t kPiece = size_t{1} << 16, kLookAhead = size_t{1} << 20;
    if (text.size() - pos <= kPiece) return text.size();
    const size_t end = pos + kPiece;
    // 1. After a newline: "\n" is a piece of its own in every tokenizer we train or import.
    const size_t nl = text.substr(end, kLookAhead).find('\n');
    if (nl != std::string_view::npos) return end + nl + 1;
    const size_t nl_before = text.substr(pos, end - pos).rfind('\n');
    if (nl_before != std::string_view::npos) return pos + nl_before + 1;
    // 2. A line longer than that (a file without newlines): before a single space between two
    // non-space characters. Both SentencePiece (split by whitespace) and GPT-2's pre-tokenizer
    // start a new word there, so no token spans the cut either.
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    for (size_t i = end; i > pos + 1; --i) {
        if (text[i] == ' ' && !is_space(text[i - 1]) && i + 1 < text.size() && !is_space(text[i + 1])) return i;
    }
    // 3. No space either (random bytes, a script without spaces): at a character boundary. A
    // token may differ from the whole-text encoding here, once per 64 KiB.
    size_t cut = end;
    while (cut > pos + 1 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return cut;
}

PrepareStats prepare_token_shards(const Tokenizer& tokenizer, const std::vector<std::filesystem::path>& inputs,
                                  const std::filesystem::path& out_dir, double val_fraction,
                                  int64_t tokens_per_shard) {
    if (inputs.empty()) throw Error("no input files", "--input", "pass one or more text files");
    if (!(val_fraction >= 0.0 && val_fraction < 1.0)) {
        throw Error("val fraction " + std::to_string(val_fraction) + " is outside [0, 1)", "--val-fraction",
                    "e.g. --val-fraction 0.1");
    }
    ensure_dir(out_dir);
    for (const auto& entry : std::filesystem::directory_iterator(out_dir)) {  // stale shards would mix in
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() == ".bin" && (name.rfind("train_", 0) == 0 || name.rfind("val_", 0) == 0)) {
            std::filesystem::remove(entry.path());
        }
    }

    const auto vocab = static_cast<uint32_t>(tokenizer.vocab_size());
    PrepareStats stats;
    std::vector<int32_t> train_buf, val_buf;
    auto flush = [&](std::vector<int32_t>& buf, const std::string& split, size_t& count, bool final) {
        while (!buf.empty() && (final || static_cast<int64_t>(buf.size()) >= tokens_per_shard)) {
            size_t n = std::min(buf.size(), static_cast<size_t>(tokens_per_shard));
            std::vector<int32_t> part(buf.begin(), buf.begin() + static_cast<long>(n));
            write_shard(out_dir / shard_name(split, count++), part, vocab, tokenizer.fingerprint());
            buf.erase(buf.begin(), buf.begin() + static_cast<long>(n));
        }
    };

    for (const auto& path : inputs) {
        std::string text = read_text_file(path);
        // Encode in ~64 KiB pieces (see encode_piece_end): small pieces keep SentencePiece's
        // working memory (tens of bytes per input byte) from setting peak RSS.
        std::vector<int32_t> tokens;
        Progress progress("tokenize " + path.filename().string(), static_cast<int64_t>(text.size()));
        size_t pos = 0;
        while (pos < text.size()) {
            const size_t end = encode_piece_end(text, pos);
            auto ids = tokenizer.encode(std::string_view(text).substr(pos, end - pos));
            tokens.insert(tokens.end(), ids.begin(), ids.end());
            pos = end;
            progress.update(static_cast<int64_t>(pos));
        }
        progress.finish();
        if (tokens.empty()) {
            spdlog::warn("{}: no text, skipped", path.string());
            continue;
        }
        tokens.push_back(tokenizer.eos_id());  // document boundary
        const auto n_val = static_cast<size_t>(static_cast<double>(tokens.size()) * val_fraction);
        train_buf.insert(train_buf.end(), tokens.begin(), tokens.end() - static_cast<long>(n_val));
        val_buf.insert(val_buf.end(), tokens.end() - static_cast<long>(n_val), tokens.end());
        stats.train_tokens += static_cast<int64_t>(tokens.size() - n_val);
        stats.val_tokens += static_cast<int64_t>(n_val);
        spdlog::info("{}: {} bytes -> {} tokens ({:.2f} bytes/token)", path.string(), text.size(), tokens.size(),
                     static_cast<double>(text.size()) / static_cast<double>(tokens.size()));
        flush(train_buf, "train", stats.train_shards, false);
        flush(val_buf, "val", stats.val_shards, false);
    }
    if (stats.train_tokens == 0) {
        throw Error("the input files hold no text", inputs.front().string(), "prepare a non-empty corpus");
    }
    flush(train_buf, "train", stats.train_shards, true);
    flush(val_buf, "val", stats.val_shards, true);

    nlohmann::json meta = {
        {"format_version", kShardVersion},
        {"tokenizer_fingerprint", hex64(tokenizer.fingerprint())},
        {"vocab_size", vocab},
        {"train_tokens", stats.train_tokens},
        {"val_tokens", stats.val_tokens},
        {"val_fraction", val_fraction},
    };
    for (const auto& p : inputs) meta["inputs"].push_back(p.string());
    tokenizer.save(out_dir);
    atomic_write(out_dir / "meta.json", meta.dump(2) + "\n");
    return stats;
}

uint64_t shards_tokenizer_fingerprint(const std::filesystem::path& dir) {
    const auto path = dir / "meta.json";
    try {
        auto meta = nlohmann::json::parse(read_file(path));
        return std::stoull(meta.at("tokenizer_fingerprint").get<std::string>(), nullptr, 16);
    } catch (const std::exception& e) {  // JSON errors, and a fingerprint that is not hex
        throw Error(std::string("unreadable meta.json: ") + e.what(), path.string(),
                    "re-create the directory with `rlhf data prepare`");
    }
}

}  // namespace rlhf
