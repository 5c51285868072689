#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "rlhf/config/load.h"
#include "rlhf/config/presets.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {
const char* kMinimal = "stage: pretrain\ndata:\n  text: [corpus.txt]\n";
}

TEST_CASE("a minimal config gets every default", "[config]") {
    RunConfig c = load_config_text(kMinimal, "mem.yaml");
    RunConfig d;
    REQUIRE(c.model.n_layer == d.model.n_layer);
    REQUIRE(c.optim.lr == d.optim.lr);
    REQUIRE(c.data.text == std::vector<std::string>{"corpus.txt"});
    REQUIRE(c.runtime.threads == 0);
}

TEST_CASE("overrides (--set) apply in order and parse YAML values", "[config]") {
    RunConfig c = load_config_text(kMinimal, "mem.yaml",
                                   {"train.max_steps=7", "optim.lr=2.5e-4", "model.bias=true", "data.text=[a.txt, b.txt]",
                                    "train.max_steps=9"});
    REQUIRE(c.train.max_steps == 9);
    REQUIRE(c.optim.lr == Approx(2.5e-4));
    REQUIRE(c.model.bias);
    REQUIRE(c.data.text == std::vector<std::string>{"a.txt", "b.txt"});
}

// A key given at its default value is still known as given (init_from's shape check needs it).
TEST_CASE("a key given at its default value is still known as given", "[config]") {
    RunConfig c = load_config_text(kMinimal, "mem.yaml", {"model.n_embd=128"});
    REQUIRE(c.model.n_embd == RunConfig{}.model.n_embd);
    const auto& given = c.given_keys;
    REQUIRE(std::count(given.begin(), given.end(), "model.n_embd") == 1);
    REQUIRE(std::count(given.begin(), given.end(), "stage") == 1);  // from the YAML
    REQUIRE(std::count(given.begin(), given.end(), "model.n_layer") == 0);
}

TEST_CASE("an unknown key names file:line and suggests the right key", "[config]") {
    const std::string yaml = "stage: pretrain\ndata:\n  text: [c.txt]\nmodel:\n  n_layers: 4\n";
    REQUIRE_THROWS_WITH(load_config_text(yaml, "x.yaml"),
                        Contains("x.yaml:5") && Contains("unknown key 'model.n_layers'") &&
                            Contains("did you mean 'model.n_layer'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"optim.learning_rate=1"}),
                        Contains("--set optim.learning_rate=1") && Contains("unknown key"));
    // A misspelt section is that section, not some key whose last part looks alike (model.bias).
    REQUIRE_THROWS_WITH(load_config_text(std::string(kMinimal) + "trian:\n  max_steps: 5\n", "x.yaml"),
                        Contains("x.yaml:4") && Contains("unknown key 'trian'") && Contains("did you mean 'train'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"trian.max_steps=5"}), Contains("did you mean 'train.max_steps'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"trian.max_stpes=5"}), !Contains("'train.max_stpes'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"bias=true"}), Contains("did you mean 'model.bias'"));
}

TEST_CASE("a wrong type names file:line, key and the value", "[config]") {
    const std::string yaml = "stage: pretrain\ndata:\n  text: [c.txt]\ntrain:\n  batch_size: twelve\n";
    REQUIRE_THROWS_WITH(load_config_text(yaml, "x.yaml"), Contains("x.yaml:5: train.batch_size: expected an integer, got 'twelve'"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"model.bias=maybe"}), Contains("expected true or false"));
    REQUIRE_THROWS_WITH(load_config_text(kMinimal, "x.yaml", {"optim.lr=fast"}), Contains("expected a number"));
}

// Out-of-range values and cross-field rules are reported, all at once.
TEST_CASE("out-of-range values and cross-field rules are all reported", "[config]") {
    const std::string yaml =
        "stage: pretrain\ndata:\n  text: [c.txt]\nmodel:\n  n_head: 3\n  n_embd: 128\n  dropout: 1.5\n"
        "optim:\n  lr: 1e-4\n  min_lr: 1e-3\n";
    try {
        load_config_text(yaml, "x.yaml");
        FAIL("expected an error");
    } catch (const Error& e) {
        const std::string msg = e.what();
        REQUIRE_THAT(msg, Contains("x.yaml:7: model.dropout: 1.5 is out of range [0, 0.999]"));
        REQUIRE_THAT(msg, Contains("model.n_embd: 128 is not divisible by model.n_head = 3"));
        REQUIRE_THAT(msg, Contains("x.yaml:10: optim.min_lr"));
        REQUIRE(std::count(msg.begin(), msg.end(), '\n') == 2);  // three problems, one line each
    }
}

TEST_CASE("a key that is not a plain name is an error with its line", "[config]") {
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\n? [a, b]\n: 1\n", "k.yaml"),
                        Contains("k.yaml:2") && Contains("plain name"));
}

TEST_CASE("invalid YAML syntax names the line", "[config]") {
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\nmodel: [unclosed\n", "bad.yaml"),
                        Contains("bad.yaml:") && Contains("invalid YAML"));
}

TEST_CASE("a PPO clip of 0, which would freeze learning, is refused", "[config]") {
    const std::string ppo = "stage: ppo\ninit_from: runs/sft\ndata:\n  files: [p.jsonl]\nppo:\n  toy_reward: count:o\n"
                            "  critic_from: policy\n";
    REQUIRE_NOTHROW(load_config_text(ppo, "x.yaml"));
    REQUIRE_THROWS_WITH(load_config_text(ppo + "  clip: 0\n", "x.yaml"), Contains("x.yaml:8: ppo.clip") && Contains("freezes"));
    REQUIRE_THROWS_WITH(load_config_text(ppo + "  value_clip: 0\n", "x.yaml"),
                        Contains("ppo.value_clip") && Contains("freezes the critic"));
}

TEST_CASE("a stage without data is an error naming the key", "[config]") {
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\n", "x.yaml"), Contains("data.text"));
    REQUIRE_THROWS_WITH(load_config_text("stage: train\n", "x.yaml"), Contains("'train' is not one of"));
}

// A key given twice in one mapping is an error naming both lines.
TEST_CASE("a key twice in one mapping is an error naming both lines", "[config]") {
    // Two train: sections, and max_steps twice in one section: yaml-cpp keeps both, the last would win.
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\ndata: {text: [c]}\ntrain:\n  max_steps: 5\ntrain:\n  max_steps: 7\n", "x.yaml"),
                        Contains("x.yaml:5") && Contains("'train' is given twice") && Contains("first at x.yaml:3"));
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\ndata: {text: [c]}\ntrain:\n  max_steps: 5\n  max_steps: 7\n", "x.yaml"),
                        Contains("'train.max_steps' is given twice") && Contains("x.yaml:5"));
    // The same name in different sections is fine.
    REQUIRE_NOTHROW(load_config_text("stage: pretrain\ndata: {text: [c]}\ntrain: {batch_size: 4}\nreward: {margin: 0.1}\n", "x.yaml"));
}

TEST_CASE("presets fill the size but explicit keys win", "[config]") {
    RunConfig c = load_config_text("stage: pretrain\ndata: {text: [c]}\nmodel: {preset: gpt2-medium, n_layer: 2}\n", "x");
    REQUIRE(c.model.n_layer == 2);       // explicit
    REQUIRE(c.model.n_embd == 1024);     // preset
    REQUIRE(c.model.n_head == 16);
    REQUIRE(c.model.block_size == 1024);
    REQUIRE(c.model.bias);                       // GPT-2's layout, not only its size
    REQUIRE(c.model.activation == Activation::GeluTanh);
    REQUIRE(c.model.vocab_size == 50304);
    c = load_config_text("stage: pretrain\ndata: {text: [c]}\nmodel: {preset: gpt2, bias: false, vocab_size: 0}\n", "x");
    REQUIRE_FALSE(c.model.bias);                 // explicit
    REQUIRE(c.model.vocab_size == 0);
    REQUIRE(c.model.activation == Activation::GeluTanh);  // preset
    REQUIRE_THROWS_WITH(load_config_text("stage: pretrain\ndata: {text: [c]}\nmodel: {preset: gpt5}\n", "x"),
                        Contains("model.preset"));
}

namespace {

// A field of config.h as the YAML sees it: "ppo.clip", "double".
struct HeaderField {
    std::string key, type;
};

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Splits at the commas that are outside quotes and brackets: "a = 1, b" -> {"a = 1", " b"}.
std::vector<std::string> split_declarators(const std::string& s) {
    std::vector<std::string> out(1);
    int depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (quoted) {
            if (c == '\\' && i + 1 < s.size()) out.back() += s[i++];
            else if (c == '"') quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == '<' || c == '{' || c == '(') {
            ++depth;
        } else if (c == '>' || c == '}' || c == ')') {
            --depth;
        } else if (c == ',' && depth == 0) {
            out.emplace_back();
            continue;
        }
        out.back() += c;
    }
    return out;
}

// The enums of config/enums.h, whose values are words ("Advantage", "Stage", ...).
std::set<std::string> config_enum_types() {
    const std::string text = read_file(std::filesystem::path(RLHF_SOURCE_DIR) / "include" / "rlhf" / "config" / "enums.h");
    const std::regex enum_decl(R"(enum class (\w+))");
    std::set<std::string> out;
    for (std::sregex_iterator it(text.begin(), text.end(), enum_decl), end; it != end; ++it) out.insert((*it)[1]);
    return out;
}

// Every YAML key RunConfig has, read from include/rlhf/config/config.h itself (not from the key
// table in src/config/load.cpp, which it checks): the members of RunConfig, with a member of a
// struct type as a section ("ppo.clip", "data.fields.prompt"). A member whose comment says "not
// a YAML key" is left out. A line this small parser does not understand fails the test, so that
// a new kind of declaration cannot hide a field.
std::vector<HeaderField> config_header_fields() {
    const auto path = std::filesystem::path(RLHF_SOURCE_DIR) / "include" / "rlhf" / "config" / "config.h";
    const std::string text = read_file(path);
    std::set<std::string> leaf_types = {"int", "int64_t", "uint64_t", "double", "bool", "std::string",
                                        "std::vector<std::string>"};
    for (const auto& e : config_enum_types()) leaf_types.insert(e);
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> structs;  // name -> (type, member)
    std::vector<std::string> open;  // the structs the current line is in
    const std::regex struct_open(R"(struct (\w+) \{)"), struct_close_member(R"(\} (\w+);)"),
        declaration(R"((.*\S)\s+(\w+))");
    std::istringstream lines(text);
    int line_no = 0;
    for (std::string line; std::getline(lines, line);) {
        ++line_no;
        INFO("config.h:" << line_no << ": " << line);
        const auto comment_at = line.find("//");
        const std::string comment = comment_at == std::string::npos ? "" : line.substr(comment_at);
        const std::string code = trim(line.substr(0, comment_at));
        std::smatch m;
        if (code.empty()) continue;
        if (std::regex_match(code, m, struct_open)) {
            open.push_back(m[1]);
            structs[m[1]];
        } else if (!open.empty() && code == "};") {
            open.pop_back();
        } else if (!open.empty() && std::regex_match(code, m, struct_close_member)) {
            const std::string inner = open.back();
            open.pop_back();
            REQUIRE_FALSE(open.empty());
            structs[open.back()].emplace_back(inner, m[1]);
        } else if (!open.empty()) {
            REQUIRE(code.back() == ';');  // one declaration per line: `type name [= default][, name ...];`
            if (comment.find("not a YAML key") != std::string::npos) continue;
            std::string type;
            for (const auto& piece : split_declarators(code.substr(0, code.size() - 1))) {
                const std::string decl = trim(piece.substr(0, piece.find('=')));
                if (type.empty()) {
                    REQUIRE(std::regex_match(decl, m, declaration));
                    type = m[1];
                    structs[open.back()].emplace_back(type, m[2]);
                } else {
                    REQUIRE(std::regex_match(decl, std::regex(R"(\w+)")));
                    structs[open.back()].emplace_back(type, decl);
                }
            }
        }
    }
    REQUIRE(open.empty());
    REQUIRE(structs.count("RunConfig"));
    std::vector<HeaderField> out;
    std::function<void(const std::string&, const std::string&)> expand = [&](const std::string& name,
                                                                            const std::string& prefix) {
        for (const auto& [type, member] : structs.at(name)) {
            INFO("member " << prefix << member << " of type " << type);
            if (structs.count(type)) {
                expand(type, prefix + member + ".");
            } else {
                REQUIRE(leaf_types.count(type));  // a type the loader cannot hold: extend the test and load.cpp
                // A member named after a C++ keyword ends in '_' (chat.template: ChatConfig::template_).
                out.push_back({prefix + (member.back() == '_' ? member.substr(0, member.size() - 1) : member), type});
            }
        }
    };
    expand("RunConfig", "");
    return out;
}

// A value for `field` that is not its default `def` (as config_key_docs writes it), as --set's YAML.
std::string non_default_value(const HeaderField& field, const std::string& def) {
    std::ostringstream out;
    out.precision(17);
    if (field.type == "bool") return def == "true" ? "false" : "true";
    if (field.type == "uint64_t") return "18446744073709551615";
    if (field.type == "int" || field.type == "int64_t") {
        const long long d = std::stoll(def);
        out << (d != 0 ? 2 * d : 2);  // doubled sizes keep model.n_embd divisible by model.n_head; 2: an even head_dim
        return out.str();
    }
    if (field.type == "double") {
        const double d = std::stod(def);
        out << (d != 0 ? d / 3 : 1.0 / 3);  // in every range, and not short in binary
        return out.str();
    }
    if (field.type == "std::vector<std::string>") return R"(["a b.txt", "c: d", ""])";
    if (config_enum_types().count(field.type)) return "no_such_word";  // the error lists the words; one is taken below
    return R"("x y: #z \"q\" \u00fc")";  // std::string; a key with choices gets one of them below
}

}  // namespace

TEST_CASE("dump_config round-trips every field of config.h", "[config]") {
    // Adding a field to config.h means adding a row to the key table in src/config/load.cpp; a
    // field without a row would silently fall out of every dump (and of checkpoints' configs).
    // So the fields come from config.h itself, and each must have exactly one row ...
    const auto header = config_header_fields();
    const auto docs = config_key_docs();
    std::map<std::string, std::string> table;  // key -> default text
    for (const auto& k : docs) {
        INFO("key " << k.key);
        REQUIRE(table.emplace(k.key, k.default_value).second);  // no key twice
    }
    std::string no_row, no_field;
    std::set<std::string> header_keys;
    for (const auto& f : header) {
        header_keys.insert(f.key);
        if (!table.count(f.key)) no_row += " " + f.key;
    }
    for (const auto& [key, _] : table) {
        if (!header_keys.count(key)) no_field += " " + key;
    }
    INFO("fields of config.h without a row in load.cpp's key table:" << no_row);
    INFO("rows of the key table that are no field of config.h:" << no_field);
    REQUIRE(no_row.empty());
    REQUIRE(no_field.empty());
    REQUIRE(header.size() == docs.size());
    REQUIRE(header.size() > 100);  // the parser saw the whole file

    // ... and each key, set away from its default, survives dump_config and a reload. Stage rules
    // forbid some keys in some stages (data.shards with data.text, stage: sft without init_from),
    // so a key is tried on a few base configs until one accepts it (stage: sft on the dpo one).
    const std::vector<std::string> bases = {
        kMinimal,
        "stage: pretrain\ntokenizer: {path: tok}\ndata: {shards: shards}\n",
        "stage: dpo\ninit_from: runs/sft\ndata: {files: [pairs.jsonl]}\n",
        std::string(kMinimal) + "model: {arch: llama}\n",  // the llama-only keys
    };
    const std::regex choices_in_error(R"(is not one of: (.*))");
    for (const auto& f : header) {
        const std::string def = table.at(f.key);
        std::string value = non_default_value(f, def);
        INFO("key " << f.key << " (" << f.type << ", default '" << def << "')");
        bool loaded = false;
        for (size_t attempt = 0; attempt < 2 && !loaded; ++attempt) {
            std::string last_error;
            for (const auto& base : bases) {
                const RunConfig plain = load_config_text(base, "base.yaml");
                RunConfig c;
                try {
                    c = load_config_text(base, "base.yaml", {f.key + "=" + value});
                } catch (const Error& e) {
                    last_error = e.what();
                    continue;
                }
                INFO("value " << value);
                const std::string dumped = dump_config(c);
                REQUIRE(dumped != dump_config(plain));  // the value was not the base's
                const RunConfig back = load_config_text(dumped, "dump.yaml");
                REQUIRE(dump_config(back) == dumped);
                loaded = true;
                break;
            }
            // A string with fixed choices: take the first that is not the default.
            std::smatch m;
            const bool words = f.type == "std::string" || config_enum_types().count(f.type);
            if (!loaded && words && attempt == 0 &&
                std::regex_search(last_error, m, choices_in_error)) {
                std::istringstream list(m[1].str());
                value.clear();
                for (std::string choice; std::getline(list, choice, ',');) {
                    choice = trim(choice);
                    if (choice != def && value.empty()) value = choice;
                }
            } else if (!loaded) {
                INFO("last error: " << last_error);
                FAIL("no base config accepts " << f.key << "=" << value);
            }
        }
        REQUIRE(loaded);
    }
    // The edges of the seed and of the text lists, once more by value.
    RunConfig c = load_config_text(kMinimal, "mem.yaml", {"runtime.seed=18446744073709551615", R"(data.text=["a b.txt", c.txt])"});
    RunConfig back = load_config_text(dump_config(c), "dump.yaml");
    REQUIRE(back.runtime.seed == 18446744073709551615ULL);
    REQUIRE(back.data.text == std::vector<std::string>{"a b.txt", "c.txt"});
}

TEST_CASE("every documented key is in docs/config.md", "[config]") {
    const std::string doc = read_file(std::filesystem::path(RLHF_SOURCE_DIR) / "docs" / "config.md");
    for (const auto& k : config_key_docs()) {
        INFO(k.key);
        REQUIRE_THAT(doc, Contains("`" + k.key + "`"));
    }
}

TEST_CASE("every shipped config loads and validates", "[config]") {
    int n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(std::filesystem::path(RLHF_SOURCE_DIR) / "configs")) {
        if (e.path().extension() != ".yaml") continue;
        INFO(e.path().string());
        REQUIRE_NOTHROW(load_config(e.path()));
        ++n;
    }
    REQUIRE(n >= 2);
}

// Docs/config.md's key table is the code's, default for default.
TEST_CASE("docs/config.md's key table is the code's, with defaults", "[config]") {
    // Generated by `rlhf config keys --markdown`; hand edits or a new key without regenerating fail here.
    const std::string docs = read_file(std::filesystem::path(RLHF_SOURCE_DIR) / "docs" / "config.md");
    const std::string table = config_keys_markdown();
    INFO("regenerate the table with: build/rlhf config keys --markdown");
    REQUIRE_THAT(docs, Contains(table));
    REQUIRE_THAT(table, Contains("| `init_from` | \"\" | sft, reward, ppo, dpo: checkpoint") &&
                            Contains("| `runtime.device` | `cpu` | cpu \\| cuda \\| cuda:N \\| auto |"));
}
