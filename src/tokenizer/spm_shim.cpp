// librlhf_spm_shim.so: SentencePiece behind the C interface of spm_shim_api.h.
// Built as its own shared library and loaded with dlmopen() — see the header for why.
#include "rlhf/tokenizer/spm_shim_api.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

struct RlhfSpm {
    sentencepiece::SentencePieceProcessor processor;
};

namespace {

void set_error(char* err, size_t cap, const std::string& message) {
    if (!err || cap == 0) return;
    size_t n = message.size() < cap - 1 ? message.size() : cap - 1;
    std::memcpy(err, message.data(), n);
    err[n] = '\0';
}

// Feeds the caller's (pointer, length) sentences to the trainer without copying them all first.
class BufferIterator : public sentencepiece::SentenceIterator {
public:
    BufferIterator(const char* const* sentences, const size_t* lengths, size_t n)
        : sentences_(sentences), lengths_(lengths), n_(n) { load(); }
    bool done() const override { return index_ >= n_; }
    void Next() override { ++index_; load(); }
    const std::string& value() const override { return current_; }
    sentencepiece::util::Status status() const override { return {}; }

private:
    void load() { if (index_ < n_) current_.assign(sentences_[index_], lengths_[index_]); }
    const char* const* sentences_;
    const size_t* lengths_;
    size_t n_, index_ = 0;
    std::string current_;
};

}  // namespace

extern "C" {

int rlhf_spm_train(const char* const* keys, const char* const* values, int n_kwargs,
                   const char* const* sentences, const size_t* lengths, size_t n_sentences,
                   char** model, size_t* model_len, char* err, size_t err_cap) {
    try {
        std::unordered_map<std::string, std::string> kwargs;
        for (int i = 0; i < n_kwargs; ++i) kwargs[keys[i]] = values[i];
        BufferIterator it(sentences, lengths, n_sentences);
        std::string serialized;
        auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, &serialized);
        if (!status.ok()) {
            set_error(err, err_cap, status.ToString());
            return -1;
        }
        char* buffer = static_cast<char*>(std::malloc(serialized.size()));
        if (!buffer) {
            set_error(err, err_cap, "out of memory");
            return -1;
        }
        std::memcpy(buffer, serialized.data(), serialized.size());
        *model = buffer;
        *model_len = serialized.size();
        return 0;
    } catch (const std::exception& e) {
        set_error(err, err_cap, e.what());
        return -1;
    } catch (...) {
        set_error(err, err_cap, "unknown error in SentencePiece training");
        return -1;
    }
}

void rlhf_spm_free(void* buffer) { std::free(buffer); }

RlhfSpm* rlhf_spm_load(const char* model, size_t model_len, char* err, size_t err_cap) {
    try {
        auto* spm = new RlhfSpm();
        auto status = spm->processor.LoadFromSerializedProto(std::string(model, model_len));
        if (!status.ok()) {
            set_error(err, err_cap, status.ToString());
            delete spm;
            return nullptr;
        }
        return spm;
    } catch (const std::exception& e) {
        set_error(err, err_cap, e.what());
        return nullptr;
    } catch (...) {
        set_error(err, err_cap, "unknown error loading SentencePiece model");
        return nullptr;
    }
}

void rlhf_spm_destroy(RlhfSpm* spm) { delete spm; }

int rlhf_spm_info(const RlhfSpm* spm, int what) {
    switch (what) {
        case RLHF_SPM_PIECES: return spm->processor.GetPieceSize();
        case RLHF_SPM_UNK: return spm->processor.unk_id();
        case RLHF_SPM_BOS: return spm->processor.bos_id();
        case RLHF_SPM_EOS: return spm->processor.eos_id();
        case RLHF_SPM_PAD: return spm->processor.pad_id();
        default: return -1;
    }
}

long rlhf_spm_encode(const RlhfSpm* spm, const char* text, size_t len, int* ids, size_t cap,
                     char* err, size_t err_cap) {
    try {
        std::vector<int> out;
        auto status = spm->processor.Encode(std::string(text, len), &out);
        if (!status.ok()) {
            set_error(err, err_cap, status.ToString());
            return -1;
        }
        if (out.size() <= cap) std::memcpy(ids, out.data(), out.size() * sizeof(int));
        return static_cast<long>(out.size());
    } catch (const std::exception& e) {
        set_error(err, err_cap, e.what());
        return -1;
    }
}

long rlhf_spm_decode(const RlhfSpm* spm, const int* ids, size_t n, char* out, size_t cap,
                     char* err, size_t err_cap) {
    try {
        std::string text;
        auto status = spm->processor.Decode(std::vector<int>(ids, ids + n), &text);
        if (!status.ok()) {
            set_error(err, err_cap, status.ToString());
            return -1;
        }
        if (text.size() <= cap) std::memcpy(out, text.data(), text.size());
        return static_cast<long>(text.size());
    } catch (const std::exception& e) {
        set_error(err, err_cap, e.what());
        return -1;
    }
}

long rlhf_spm_piece(const RlhfSpm* spm, int id, char* out, size_t cap) {
    if (id < 0 || id >= spm->processor.GetPieceSize()) return -1;
    const std::string& piece = spm->processor.IdToPiece(id);
    if (piece.size() <= cap) std::memcpy(out, piece.data(), piece.size());
    return static_cast<long>(piece.size());
}

int rlhf_spm_piece_to_id(const RlhfSpm* spm, const char* piece, size_t len) {
    std::string p(piece, len);
    int id = spm->processor.PieceToId(p);
    if (id == spm->processor.unk_id() && p != spm->processor.IdToPiece(id)) return -1;
    return id;
}

}  // extern "C"
