#include "rlhf/tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <sstream>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/tokenizer/gpt2_bpe.h"
#include "rlhf/tokenizer/spm_loader.h"

namespace rlhf {

namespace {
constexpr size_t kErrCap = 512;

// The GPT-2 BPE files in `dir`, in the order they are looked for: Hugging Face's, OpenAI's.
std::pair<std::filesystem::path, std::filesystem::path> bpe_files(const std::filesystem::path& dir) {
    for (const auto& [vocab, merges] : {std::pair{kBpeVocabFile, kBpeMergesFile}, std::pair{"encoder.json", "vocab.bpe"}}) {
        if (std::filesystem::exists(dir / vocab) && std::filesystem::exists(dir / merges)) return {dir / vocab, dir / merges};
    }
    return {};
}

// A Hugging Face directory's tokenizer_config.json, or an empty object when it has none.
nlohmann::json read_tokenizer_config(const std::filesystem::path& dir) {
    const auto file = dir / "tokenizer_config.json";
    if (!std::filesystem::exists(file)) return nlohmann::json::object();
    try {
        return nlohmann::json::parse(read_file(file));
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("not valid JSON: ") + e.what(), file.string(), "");
    }
}

// A special token's text in tokenizer_config.json: a string or {"content": …}; "" when absent.
std::string hf_token_text(const nlohmann::json& config, const char* key) {
    const auto v = config.value(key, nlohmann::json());
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return "";
}

// The end-of-text token a Hugging Face directory names (tokenizer_config.json's eos_token), or GPT-2's.
std::string hf_eos_piece(const std::filesystem::path& dir) {
    const std::string eos = hf_token_text(read_tokenizer_config(dir), "eos_token");
    return eos.empty() ? "<|endoftext|>" : eos;
}

// A Hugging Face directory's chat template: tokenizer_config.json's "chat_template" (a string, or
// a list of {name, template} whose "default" is the one), or chat_template.jinja beside it (newer
// hub repositories); nullopt when it has none.
std::optional<ChatTemplate> hf_chat_template(const std::filesystem::path& dir) {
    const nlohmann::json config = read_tokenizer_config(dir);
    std::string jinja;
    if (const auto t = config.value("chat_template", nlohmann::json()); t.is_string()) {
        jinja = t.get<std::string>();
    } else if (t.is_array()) {
        for (const auto& named : t) {
            if (named.is_object() && named.value("name", "") == "default") jinja = named.value("template", "");
        }
    }
    if (jinja.empty() && std::filesystem::is_regular_file(dir / "chat_template.jinja")) jinja = read_file(dir / "chat_template.jinja");
    if (jinja.empty()) return std::nullopt;
    return recognise_chat_template(jinja, hf_token_text(config, "bos_token"));
}

Tokenizer load_base(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) {
        throw Error("tokenizer model not found", path.string(),
                    "train one with `rlhf tokenizer train`, import GPT-2's with `rlhf tokenizer import-gpt2`, or "
                    "point at a directory holding one");
    }
    const bool is_dir = std::filesystem::is_directory(path);
    const std::filesystem::path dir = is_dir ? path : path.parent_path();
    if (!is_dir && path.extension() == ".model") return Tokenizer::from_model_bytes(read_file(path), path.string());
    if (std::filesystem::exists(dir / kTokenizerModelFile) && (is_dir || path.filename() == kTokenizerModelFile)) {
        return Tokenizer::from_model_bytes(read_file(dir / kTokenizerModelFile), (dir / kTokenizerModelFile).string());
    }
    // A Hugging Face tokenizer.json says everything (its split, its added tokens); vocab.json +
    // merges.txt beside it (the hub has both) would lose its split.
    if (std::filesystem::exists(dir / "tokenizer.json")) {
        return Tokenizer::from_gpt2_bpe(Gpt2Bpe::from_tokenizer_json(read_file(dir / "tokenizer.json"), (dir / "tokenizer.json").string()),
                                        dir.string(), hf_eos_piece(dir));
    }
    if (const auto [vocab, merges] = bpe_files(dir); !vocab.empty()) {
        Gpt2Bpe bpe(read_file(vocab), vocab.string(), read_file(merges), merges.string());
        std::string eos = hf_eos_piece(dir);
        if (const auto options = dir / kBpeOptionsFile; std::filesystem::exists(options)) {  // ours, beside the files
            try {
                const auto j = nlohmann::json::parse(read_file(options));
                bpe.set_options(PreTokenizer::from_json(j.at("pre_tokenizer"), options.string()), j.at("ignore_merges").get<bool>());
                bpe.set_hf_added_tokens(j.value("hf_added_tokens", nlohmann::json::array()));
                bpe.set_hf_post_processor(j.value("hf_post_processor", nlohmann::json()), options.string());
                eos = j.at("eos").get<std::string>();
            } catch (const nlohmann::json::exception& e) {
                throw Error(std::string("malformed: ") + e.what(), options.string(), "");
            }
        }
        return Tokenizer::from_gpt2_bpe(std::move(bpe), dir.string(), eos);
    }
    throw Error("tokenizer model not found", path.string(),
                "point at a directory holding tokenizer.model (`rlhf tokenizer train`), or GPT-2's vocab.json + "
                "merges.txt / encoder.json + vocab.bpe / tokenizer.json (`rlhf tokenizer import-gpt2`)");
}
}  // namespace

bool Tokenizer::is_tokenizer_dir(const std::filesystem::path& dir) {
    return std::filesystem::exists(dir / kTokenizerModelFile) || !bpe_files(dir).first.empty() ||
           std::filesystem::exists(dir / "tokenizer.json");
}

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
    Tokenizer tok = load_base(path);
    const auto added_path = (std::filesystem::is_directory(path) ? path : path.parent_path()) / kAddedTokensFile;
    if (std::filesystem::exists(added_path)) {
        std::vector<std::string> added;
        std::vector<std::pair<int64_t, std::string>> by_id;  // Hugging Face's {token: id}
        try {
            const auto j = nlohmann::json::parse(read_file(added_path));
            if (j.contains("added_tokens")) {
                added = j.at("added_tokens").get<std::vector<std::string>>();  // ours: in id order
            } else {
                for (const auto& [token, id] : j.items()) by_id.emplace_back(id.get<int64_t>(), token);
            }
        } catch (const nlohmann::json::exception& e) {
            throw Error(std::string("unreadable added tokens: ") + e.what(), added_path.string(),
                        "restore the file from the checkpoint it came from");
        }
        tok = by_id.empty() ? tok.with_added_tokens(added) : tok.with_added_tokens_at(by_id, added_path.string());
    }
    const auto chat_path = (std::filesystem::is_directory(path) ? path : path.parent_path()) / kChatTemplateFile;
    if (std::filesystem::exists(chat_path)) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(read_file(chat_path));
        } catch (const nlohmann::json::exception& e) {
            throw Error(std::string("not valid JSON: ") + e.what(), chat_path.string(), "");
        }
        tok = tok.with_chat_template(chat_template_from_json(j, chat_path.string()));
    } else if (auto hf = hf_chat_template(chat_path.parent_path())) {
        tok = tok.with_chat_template(std::move(*hf));  // a Hugging Face directory's own
    }
    return tok;
}

Tokenizer Tokenizer::with_chat_template(ChatTemplate t) const {
    Tokenizer out = *this;
    out.chat_template_ = std::make_shared<const ChatTemplate>(std::move(t));
    return out;
}

Tokenizer Tokenizer::from_model_bytes(std::string model_bytes, const std::string& source) {
    const SpmApi& api = spm_api();
    char err[kErrCap] = {0};
    RlhfSpm* raw = api.load(model_bytes.data(), model_bytes.size(), err, kErrCap);
    if (!raw) throw Error(std::string("not a valid SentencePiece model: ") + err, source,
                          "the file is corrupted or is not a tokenizer.model");
    Tokenizer tok;
    tok.spm_ = std::shared_ptr<RlhfSpm>(raw, [destroy = api.destroy](RlhfSpm* p) { destroy(p); });
    tok.fingerprint_ = fnv1a64(model_bytes.data(), model_bytes.size());
    tok.model_bytes_ = std::make_shared<const std::string>(std::move(model_bytes));
    tok.source_ = source;
    tok.spm_size_ = api.info(raw, RLHF_SPM_PIECES);
    tok.unk_id_ = api.info(raw, RLHF_SPM_UNK);
    tok.bos_id_ = api.info(raw, RLHF_SPM_BOS);
    tok.eos_id_ = api.info(raw, RLHF_SPM_EOS);
    tok.pad_id_ = api.info(raw, RLHF_SPM_PAD);
    if (tok.bos_id_ < 0 || tok.eos_id_ < 0 || tok.pad_id_ < 0 || tok.pad_id_ == tok.eos_id_) {
        throw Error("tokenizer needs distinct BOS, EOS and PAD ids (found bos " + std::to_string(tok.bos_id_) +
                        ", eos " + std::to_string(tok.eos_id_) + ", pad " + std::to_string(tok.pad_id_) + ")",
                    source, "train it with `rlhf tokenizer train`, which reserves all three");
    }
    return tok;
}

Tokenizer Tokenizer::from_gpt2_bpe(Gpt2Bpe bpe, const std::string& source, const std::string& eos_piece) {
    Tokenizer tok;
    tok.bpe_ = std::make_shared<const Gpt2Bpe>(std::move(bpe));
    tok.source_ = source;
    tok.fingerprint_ = tok.bpe_->fingerprint();
    tok.spm_size_ = tok.bpe_->size();
    tok.eos_id_ = tok.bpe_->piece_to_id(eos_piece);
    if (tok.eos_id_ < 0) {
        throw Error("the vocabulary has no '" + eos_piece + "' (the end of text)", source, "GPT-2's id 50256 is <|endoftext|>");
    }
    tok.bos_id_ = tok.eos_id_;  // GPT-2 starts a text with the same token that ends one
    tok = tok.with_added_tokens({kGpt2PadToken});
    tok.pad_id_ = tok.added_token_id(kGpt2PadToken);
    return tok;
}

const Gpt2Bpe& Tokenizer::bpe() const {
    if (!bpe_) throw Error("a SentencePiece tokenizer has no byte-level BPE", source_, "");
    return *bpe_;
}

const std::string& Tokenizer::model_bytes() const {
    if (!model_bytes_) throw Error("a GPT-2 BPE tokenizer has no SentencePiece model", source_, "");
    return *model_bytes_;
}

Tokenizer Tokenizer::with_added_tokens_at(std::vector<std::pair<int64_t, std::string>> by_id, const std::string& where) const {
    std::sort(by_id.begin(), by_id.end());
    Tokenizer out = *this;
    for (const auto& [id, token] : by_id) {
        if (id < spm_size_) continue;  // the base vocabulary's own (<|endoftext|>)
        out = out.with_added_tokens({token});
        if (out.piece_to_id(token) != id) {
            throw Error("added token '" + token + "' has id " + std::to_string(id) + " but follows the vocabulary at " +
                            std::to_string(out.piece_to_id(token)),
                        where, "added tokens must follow the vocabulary without gaps");
        }
    }
    return out;
}

Tokenizer Tokenizer::with_added_tokens(const std::vector<std::string>& tokens) const {
    Tokenizer out = *this;
    for (const auto& t : tokens) {
        if (t.empty()) throw Error("an added token must not be empty", source_, "");
        if (out.added_token_id(t) < 0) out.added_.push_back(t);
    }
    return out;
}

int32_t Tokenizer::added_token_id(std::string_view token) const {
    auto it = std::find(added_.begin(), added_.end(), token);
    return it == added_.end() ? -1 : spm_size_ + static_cast<int32_t>(it - added_.begin());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    if (bpe_) return bpe_->encode(text);
    const SpmApi& api = spm_api();
    char err[kErrCap] = {0};
    // Every piece covers at least one input byte, so len + 1 ids always suffice; the retry is a
    // safety net, not the common path.
    std::vector<int> ids(text.size() + 1);
    long n = api.encode(spm_.get(), text.data(), text.size(), ids.data(), ids.size(), err, kErrCap);
    if (n > static_cast<long>(ids.size())) {
        ids.resize(static_cast<size_t>(n));
        n = api.encode(spm_.get(), text.data(), text.size(), ids.data(), ids.size(), err, kErrCap);
    }
    if (n < 0) throw Error(std::string("encoding failed: ") + err, source_, "");
    return std::vector<int32_t>(ids.begin(), ids.begin() + n);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::vector<int> kept;
    kept.reserve(ids.size());
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab_size()) {
            throw Error("token id " + std::to_string(id) + " is outside the vocabulary (size " +
                            std::to_string(vocab_size()) + ")",
                        source_, "the model and tokenizer do not belong together");
        }
        if (id == bos_id_ || id == eos_id_ || id == pad_id_ || id >= spm_size_) continue;
        kept.push_back(id);
    }
    if (bpe_) {
        std::string out;
        for (int id : kept) out += bpe_->bytes_of(id);
        return out;
    }
    const SpmApi& api = spm_api();
    char err[kErrCap] = {0};
    std::string out(kept.size() * 4 + 16, '\0');
    long n = api.decode(spm_.get(), kept.data(), kept.size(), out.data(), out.size(), err, kErrCap);
    if (n > static_cast<long>(out.size())) {
        out.resize(static_cast<size_t>(n));
        n = api.decode(spm_.get(), kept.data(), kept.size(), out.data(), out.size(), err, kErrCap);
    }
    if (n < 0) throw Error(std::string("decoding failed: ") + err, source_, "");
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string Tokenizer::piece(int32_t id) const {
    if (id >= spm_size_ && id < vocab_size()) return added_[static_cast<size_t>(id - spm_size_)];
    if (bpe_) {
        if (id < 0 || id >= spm_size_) throw Error("token id " + std::to_string(id) + " is outside the vocabulary", source_, "");
        return bpe_->piece(id);
    }
    const SpmApi& api = spm_api();
    std::string out(64, '\0');
    long n = api.piece(spm_.get(), id, out.data(), out.size());
    if (n > static_cast<long>(out.size())) {
        out.resize(static_cast<size_t>(n));
        n = api.piece(spm_.get(), id, out.data(), out.size());
    }
    if (n < 0) throw Error("token id " + std::to_string(id) + " is outside the vocabulary", source_, "");
    out.resize(static_cast<size_t>(n));
    return out;
}

std::vector<int32_t> Tokenizer::encode_document(std::string_view text) const {
    std::vector<int32_t> ids = encode(text);
    if (!bpe_) return ids;
    ids.insert(ids.begin(), bpe_->post_prefix().begin(), bpe_->post_prefix().end());
    ids.insert(ids.end(), bpe_->post_suffix().begin(), bpe_->post_suffix().end());
    return ids;
}

int32_t Tokenizer::piece_to_id(std::string_view piece_text) const {
    if (int32_t id = added_token_id(piece_text); id >= 0) return id;
    if (bpe_) return bpe_->piece_to_id(piece_text);
    return spm_api().piece_to_id(spm_.get(), piece_text.data(), piece_text.size());
}

void Tokenizer::save_base_files(const std::filesystem::path& dir) const {
    ensure_dir(dir);
    if (bpe_) {
        atomic_write(dir / kBpeVocabFile, bpe_->vocab_json());
        atomic_write(dir / kBpeMergesFile, bpe_->merges_txt());
        const std::string eos = bpe_->piece(eos_id_);
        // what vocab.json + merges.txt cannot say
        if (!bpe_->default_options() || eos != "<|endoftext|>" || !bpe_->hf_added_tokens().empty() ||
            !bpe_->hf_post_processor().is_null()) {
            const nlohmann::json options = {{"pre_tokenizer", bpe_->pre_tokenizer().to_json()},
                                            {"ignore_merges", bpe_->ignore_merges()}, {"eos", eos},
                                            {"hf_added_tokens", bpe_->hf_added_tokens()},
                                            {"hf_post_processor", bpe_->hf_post_processor()}};
            atomic_write(dir / kBpeOptionsFile, options.dump(2) + "\n");
        }
    } else {
        atomic_write(dir / kTokenizerModelFile, model_bytes());
    }
}

void Tokenizer::save(const std::filesystem::path& dir) const {
    save_base_files(dir);
    std::ostringstream vocab;
    for (int32_t id = 0; id < vocab_size(); ++id) {
        std::string p = piece(id);
        if (p == "\n") p = "\\n";
        if (p == "\t") p = "\\t";
        vocab << id << '\t' << p << '\n';
    }
    atomic_write(dir / "tokenizer.vocab", vocab.str());
    const auto added_path = dir / kAddedTokensFile;
    if (!added_.empty()) {
        atomic_write(added_path, nlohmann::json({{"added_tokens", added_}}).dump(2) + "\n");
    } else if (std::filesystem::exists(added_path)) {
        std::filesystem::remove(added_path);  // a stale file would silently grow the vocabulary
    }
    const auto chat_path = dir / kChatTemplateFile;
    if (chat_template().style != ChatStyle::rlhf || !chat_template().jinja.empty()) {
        atomic_write(chat_path, chat_template_to_json(chat_template()).dump(2) + "\n");
    } else if (std::filesystem::exists(chat_path)) {
        std::filesystem::remove(chat_path);
    }
}

}  // namespace rlhf
