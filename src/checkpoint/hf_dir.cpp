#include "rlhf/checkpoint/hf_dir.h"

#include <torch/torch.h>
#include <unistd.h>

#include <set>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/tokenizer/gpt2_bpe.h"

namespace rlhf {

namespace {

nlohmann::json parse_json_file(const std::filesystem::path& file) {
    try {
        return nlohmann::json::parse(read_file(file));
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("not valid JSON: ") + e.what(), file.string(), "");
    }
}

}  // namespace

void check_hf_vocabulary(const ModelConfig& hf, const Tokenizer& tokenizer, const std::string& config_file) {
    if (hf.vocab_size < tokenizer.spm_vocab_size()) {
        throw Error("the tokenizer has " + std::to_string(tokenizer.spm_vocab_size()) + " entries but config.json's "
                        "vocab_size is " + std::to_string(hf.vocab_size),
                    config_file + ": vocab_size", "the tokenizer files and the model do not belong together");
    }
}

ImportedHfModel with_room_for_tokens(const ModelConfig& hf, Gpt model, Tokenizer tokenizer) {
    ImportedHfModel out;
    out.config = hf;
    out.tokenizer = std::move(tokenizer);
    if (hf.vocab_size < out.tokenizer.vocab_size()) {
        out.config.vocab_size = out.tokenizer.vocab_size();
        out.model = grow_vocabulary(*model, out.config.vocab_size, hf.vocab_size);
    } else {
        out.model = std::move(model);
    }
    return out;
}

nlohmann::json read_hf_config(const std::filesystem::path& dir) {
    const auto file = dir / "config.json";
    if (!std::filesystem::is_regular_file(file)) {
        throw Error("no config.json", file.string(), "point --from-hf at a directory saved by transformers' save_pretrained");
    }
    auto j = parse_json_file(file);
    if (!j.is_object()) throw Error("config.json is not a JSON object", file.string(), "");
    return j;
}

std::map<std::string, torch::Tensor> read_hf_weights(const std::filesystem::path& dir) {
    const auto single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
    if (std::filesystem::is_regular_file(single)) return load_safetensors(single).tensors;
    if (!std::filesystem::is_regular_file(index)) {
        throw Error("no model.safetensors or model.safetensors.index.json", dir.string(),
                    "save the model with safe_serialization=True (pytorch_model.bin is not read)");
    }
    const auto j = parse_json_file(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
        throw Error("no \"weight_map\" object", index.string() + ": weight_map", "");
    }
    std::set<std::string> shards;
    for (const auto& [name, shard] : j["weight_map"].items()) {
        if (!shard.is_string()) throw Error("the shard of '" + name + "' is not a file name", index.string(), "");
        shards.insert(shard.get<std::string>());
    }
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& shard : shards) {
        if (shard.find('/') != std::string::npos) throw Error("shard '" + shard + "' is not in this directory", index.string(), "");
        auto part = load_safetensors(dir / shard);
        for (auto& [name, tensor] : part.tensors) {
            if (!tensors.emplace(name, std::move(tensor)).second) {
                throw Error("tensor '" + name + "' is in two shards", (dir / shard).string(), "");
            }
        }
    }
    for (const auto& [name, shard] : j["weight_map"].items()) {
        if (!tensors.count(name)) throw Error("tensor '" + name + "' is not in its shard " + shard.dump(), index.string(), "");
    }
    return tensors;
}

Tokenizer read_hf_tokenizer(const std::filesystem::path& dir) {
    Tokenizer tok = Tokenizer::load(dir);
    if (tok.kind() != Tokenizer::Kind::gpt2_bpe) throw Error("holds a SentencePiece tokenizer, not a byte-level BPE", dir.string(), "");
    const auto file = dir / "tokenizer_config.json";
    nlohmann::json config = nlohmann::json::object();
    if (std::filesystem::is_regular_file(file)) {
        try {
            config = nlohmann::json::parse(read_file(file));
        } catch (const nlohmann::json::exception& e) {
            throw Error(std::string("not valid JSON: ") + e.what(), file.string(), "");
        }
    }
    // The added tokens Hugging Face keeps in tokenizer_config.json ("added_tokens_decoder": {id:
    // {"content": …}}), each at its id.
    if (config.contains("added_tokens_decoder")) {
        std::vector<std::pair<int64_t, std::string>> added;
        try {
            for (const auto& [id, entry] : config.at("added_tokens_decoder").items()) {
                added.emplace_back(std::stoll(id), entry.at("content").get<std::string>());
            }
        } catch (const std::exception& e) {
            throw Error(std::string("unreadable added_tokens_decoder: ") + e.what(), file.string(), "");
        }
        tok = tok.with_added_tokens_at(added, file.string() + ": added_tokens_decoder");
    }
    return tok;  // its chat template came with Tokenizer::load
}

nlohmann::json hf_tokenizer_config(const Tokenizer& tokenizer, int block_size) {
    auto special = [](const std::string& content) {
        return nlohmann::json{{"content", content}, {"special", true},   {"normalized", false},
                              {"lstrip", false},    {"rstrip", false},   {"single_word", false}};
    };
    const std::string eos = tokenizer.piece(tokenizer.eos_id());
    nlohmann::json decoder = {{std::to_string(tokenizer.eos_id()), special(eos)}};
    for (nlohmann::json t : tokenizer.bpe().hf_added_tokens()) {
        const int64_t id = t.at("id").get<int64_t>();
        t.erase("id");  // the key is the id
        decoder[std::to_string(id)] = t;
    }
    for (int32_t i = 0; i < static_cast<int32_t>(tokenizer.added_tokens().size()); ++i) {
        decoder[std::to_string(tokenizer.spm_vocab_size() + i)] = special(tokenizer.added_tokens()[i]);
    }
    const ChatTemplate& chat = tokenizer.chat_template();
    nlohmann::json config = {
        {"tokenizer_class", "GPT2Tokenizer"},
        {"add_prefix_space", false},
        {"clean_up_tokenization_spaces", false},
        {"model_max_length", block_size},
        {"bos_token", chat.bos.empty() ? eos : chat.bos},
        {"eos_token", eos},
        {"unk_token", eos},
        {"pad_token", tokenizer.piece(tokenizer.pad_id())},
        {"added_tokens_decoder", decoder},
    };
    // The model's own as it came in, else ours for its format. Our format needs our role tokens.
    if (chat.style != ChatStyle::rlhf || tokenizer.added_token_id("<|assistant|>") >= 0) {
        config["chat_template"] = chat_template_jinja(chat);
    }
    return config;
}

nlohmann::json hf_tokenizer_json(const Tokenizer& tokenizer) {
    const Gpt2Bpe& bpe = tokenizer.bpe();
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    for (int32_t id = 0; id < bpe.size(); ++id) vocab[bpe.piece(id)] = id;
    nlohmann::json merges = nlohmann::json::array();
    for (const auto& [a, b] : bpe.merges()) merges.push_back({a, b});
    nlohmann::json added = bpe.hf_added_tokens();  // the file's own (Qwen's <|im_start|>, …), then ours
    for (int32_t i = 0; i < static_cast<int32_t>(tokenizer.added_tokens().size()); ++i) {
        added.push_back({{"id", tokenizer.spm_vocab_size() + i}, {"content", tokenizer.added_tokens()[i]}, {"single_word", false},
                         {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
    }
    nlohmann::json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                            {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                            {"byte_fallback", false}, {"ignore_merges", bpe.ignore_merges()}, {"merges", merges}};
    model["vocab"] = nlohmann::json::parse(vocab.dump());  // in id order
    return {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", bpe.pre_tokenizer().normalizer_json()},
            {"pre_tokenizer", bpe.pre_tokenizer().pre_tokenizer_json()},
            {"post_processor", bpe.hf_post_processor()},  // Llama-3's BOS template, as it came
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model", model}};
}

void write_hf_directory(const std::filesystem::path& dir, const NamedTensors& tensors, const nlohmann::json& config,
                        const Tokenizer& tokenizer, int block_size) {
    if (std::filesystem::exists(dir)) throw Error("already exists", dir.string(), "choose another --out");
    const auto tmp = dir.parent_path() / (".tmp-" + dir.filename().string() + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(tmp);
    ensure_dir(tmp);
    // transformers refuses a safetensors file whose metadata lacks format "pt".
    save_safetensors(tmp / "model.safetensors", tensors, {{"format", "pt"}});
    atomic_write(tmp / "config.json", config.dump(2) + "\n");
    tokenizer.save_base_files(tmp);
    if (tokenizer.kind() == Tokenizer::Kind::gpt2_bpe) {
        nlohmann::json tok_config = hf_tokenizer_config(tokenizer, block_size);
        if (!tokenizer.bpe().default_options()) {  // its own split: only a tokenizer.json can say it
            atomic_write(tmp / "tokenizer.json", hf_tokenizer_json(tokenizer).dump() + "\n");
            tok_config["tokenizer_class"] = "PreTrainedTokenizerFast";
        }
        atomic_write(tmp / "tokenizer_config.json", tok_config.dump(2) + "\n");
    }
    fsync_path(tmp);
    std::error_code ec;
    std::filesystem::rename(tmp, dir, ec);
    if (ec) throw Error("cannot move the export into place: " + ec.message(), dir.string(), "");
}

}  // namespace rlhf
