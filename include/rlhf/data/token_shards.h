// Token shards: the pre-training corpus as flat arrays of token ids on disk.
//
// File layout (little-endian), see docs/data-format.md:
//   64-byte header: magic "RLHFTOKS", u32 format version (1), u32 bytes per token (2 or 4),
//                   u64 token count, u32 vocab size, u32 reserved, u64 tokenizer fingerprint,
//                   u64 FNV-1a checksum of the token bytes, 16 reserved bytes
//   then the tokens (uint16 when the vocabulary fits, else uint32).
// A prepared directory holds train_NNNNNN.bin, val_NNNNNN.bin, meta.json and tokenizer.model.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "rlhf/core/mapped_file.h"

namespace rlhf {

class Tokenizer;

inline constexpr char kShardMagic[8] = {'R', 'L', 'H', 'F', 'T', 'O', 'K', 'S'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

struct ShardHeader {
    uint32_t version = kShardVersion;
    uint32_t token_bytes = 2;
    uint64_t n_tokens = 0;
    uint32_t vocab_size = 0;
    uint64_t tokenizer_fingerprint = 0;
    uint64_t checksum = 0;
};

// Writes one shard file atomically. Uses uint16 storage when vocab_size <= 65536.
void write_shard(const std::filesystem::path& path, const std::vector<int32_t>& tokens, uint32_t vocab_size,
                 uint64_t tokenizer_fingerprint);

// One memory-mapped shard, validated on open (magic, version, size, checksum).
class Shard {
public:
    explicit Shard(const std::filesystem::path& path);
    const ShardHeader& header() const { return header_; }
    int64_t size() const { return static_cast<int64_t>(header_.n_tokens); }
    // Copies tokens [start, start + n) into `out` as int64.
    void read(int64_t start, int64_t n, int64_t* out) const;
    const std::filesystem::path& path() const { return file_.path(); }

private:
    MappedFile file_;
    ShardHeader header_;
};

// All shards of one split ("train" or "val") of a prepared directory, sampled as random windows.
class TokenShards {
public:
    // Opens <dir>/<split>_*.bin. Throws rlhf::Error when there are none, when a shard is damaged,
    // or when it was made with a tokenizer other than `expected_fingerprint` (0 = don't check).
    TokenShards(const std::filesystem::path& dir, const std::string& split, uint64_t expected_fingerprint);

    int64_t total_tokens() const { return total_tokens_; }
    uint32_t vocab_size() const { return vocab_size_; }

    // Number of distinct windows of `window` tokens that lie inside one shard.
    int64_t num_windows(int64_t window) const;

    // A (B, T+1) int64 batch of windows starting anywhere (nanoGPT's get_batch): windows drawn
    // with replacement. Which windows is a pure function of (seed, batch_index), so a resumed run
    // that restores batch_index reads exactly the batches it would have read.
    torch::Tensor batch(int64_t batch_size, int64_t block_size, uint64_t seed, uint64_t batch_index) const;

    // A (B, T+1) batch from epochs: each epoch cuts every shard into non-overlapping windows
    // (stride T, a random phase per epoch) and visits them all in a seeded random order, so
    // every token is trained on once per epoch. Random windows with replacement leave ~22% of
    // the tokens unseen after 1.5 epochs' worth of steps. Also a pure function of (seed, index).
    torch::Tensor epoch_batch(int64_t batch_size, int64_t block_size, uint64_t seed, uint64_t batch_index) const;

    // Windows per epoch of epoch_batch.
    int64_t windows_per_epoch(int64_t block_size) const;

private:
    // The current epoch's visiting order, rebuilt when an epoch boundary is crossed. A cache
    // behind a const interface: one TokenShards must not be sampled from two threads at once.
    struct EpochOrder {
        uint64_t seed = 0, epoch = UINT64_MAX;
        int64_t block_size = 0;
        std::vector<int64_t> order;    // window number -> (shard, k) packed as a global index
        std::vector<int64_t> offsets;  // per shard: this epoch's phase
    };
    void ensure_epoch(EpochOrder& e, int64_t block_size, uint64_t seed, uint64_t epoch) const;
    mutable EpochOrder epoch_;

    std::vector<std::unique_ptr<Shard>> shards_;
    int64_t total_tokens_ = 0;
    uint32_t vocab_size_ = 0;
    std::string where_;
};

// `rlhf data prepare`: tokenize text files and write train/val shards plus meta.json and the
// tokenizer into out_dir. Each file ends with EOS; the last val_fraction of each file's tokens
// goes to the val split.
struct PrepareStats {
    int64_t train_tokens = 0, val_tokens = 0;
    size_t train_shards = 0, val_shards = 0;
};
PrepareStats prepare_token_shards(const Tokenizer& tokenizer, const std::vector<std::filesystem::path>& inputs,
                                  const std::filesystem::path& out_dir, double val_fraction,
                                  int64_t tokens_per_shard = int64_t{1} << 28);

// Where the piece of `text` that prepare encodes at once, starting at pos, ends: ~64 KiB on, after
// a newline, else before a space between two words, else at a character boundary. Encoding the
// pieces one by one gives the whole text's ids (except at a cut of the last kind) with bounded memory.
size_t encode_piece_end(std::string_view text, size_t pos);

// The tokens meta.json lists for a split ("train" or "val"), or -1 when there is no meta.json or
// it does not say. TokenShards checks its shards against it.
int64_t shards_listed_tokens(const std::filesystem::path& dir, const std::string& split);

// The fingerprint of the tokenizer a prepared directory was made with (from meta.json).
uint64_t shards_tokenizer_fingerprint(const std::filesystem::path& dir);

}  // namespace rlhf
