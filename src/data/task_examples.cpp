// GPT-1 task data (SST-2, RTE, STS-B, Story Cloze, or JSONL) read into TaskExamples. The TSV/CSV
// readers take the files exactly as GLUE and ROCStories ship them: a header line checked against
// the format, tab splits without quoting for GLUE, RFC 4180 quoting for the Story Cloze CSV.
// Row errors name file:line and obey data.on_error: skip; file-level errors always stop.
#include "rlhf/data/task_examples.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "rlhf/core/error.h"
#include "rlhf/data/jsonl.h"

namespace rlhf {

namespace {

std::string trim(const std::string& s) {
    const auto a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

std::string shorten(const std::string& s, size_t n = 60) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

std::string num(double v) {  // 5.5, not 5.500000
    std::ostringstream s;
    s << v;
    return s.str();
}

std::string join(const std::vector<std::string>& items) {
    std::string s;
    for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
    return s;
}

// The tabular formats: how to recognise the header, how many columns a row has, what it holds.
struct TableFormat {
    const char *name, *describe;  // describe, for errors: "GLUE RTE (entailment)"
    TaskType type;
    char sep;
    size_t columns;
    const char* header;  // the whole header (exact), or its start (then `columns` must match too)
    bool exact;
};

const TableFormat kTables[] = {
    {"sst2", "GLUE SST-2 (classification)", TaskType::Classification, '\t', 2, "sentence\tlabel", true},
    {"rte", "GLUE RTE (entailment)", TaskType::Entailment, '\t', 4, "index\tsentence1\tsentence2\tlabel", true},
    {"stsb", "GLUE STS-B (similarity)", TaskType::Similarity, '\t', 10, "index\tgenre\tfilename", false},
    {"story_cloze", "Story Cloze (multiple_choice)", TaskType::MultipleChoice, ',', 8, "InputStoryid,", false},
};
const char* kKnownFormats = "sst2, rte, stsb, story_cloze, jsonl";

const TableFormat* find_table(const std::string& name) {
    for (const auto& t : kTables)
        if (name == t.name) return &t;
    return nullptr;
}

// GLUE: tabs only, no quoting (texts hold literal '"').
std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) out.push_back(line.substr(start, tab - start));
    out.push_back(line.substr(start));
    return out;
}

// One CSV line, RFC 4180: a field starting with '"' runs to the next lone '"'; "" inside is one '"'.
std::vector<std::string> split_csv(const std::string& line, const std::string& where) {
    std::vector<std::string> out;
    size_t i = 0;
    while (true) {
        std::string field;
        if (i < line.size() && line[i] == '"') {
            for (++i;; ++i) {
                if (i >= line.size()) throw Error("a quoted field runs to the end of the line", where, "close the quote with '\"'");
                if (line[i] != '"') field += line[i];
                else if (i + 1 < line.size() && line[i + 1] == '"') field += line[i++];
                else break;
            }
            if (++i < line.size() && line[i] != ',') throw Error("text after a closing quote", where, "write a '\"' inside quotes as \"\"");
        } else {
            const size_t comma = std::min(line.find(',', i), line.size());
            field = line.substr(i, comma - i);
            i = comma;
        }
        out.push_back(std::move(field));
        if (i >= line.size()) return out;
        ++i;  // the comma
    }
}

bool header_fits(const TableFormat& f, const std::string& line) {
    if (f.exact) return line == f.header;
    // Header names hold no quotes, so counting separators is enough.
    return line.rfind(f.header, 0) == 0 && static_cast<size_t>(std::count(line.begin(), line.end(), f.sep)) + 1 == f.columns;
}

// The first non-blank line, without '\r' or a UTF-8 BOM; its number in `line_no`.
std::string first_line(const std::string& path, size_t* line_no = nullptr) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("task data file not found or unreadable", path, "check data.files");
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
        if (n == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (trim(line).empty()) continue;
        if (line_no) *line_no = n;
        return line;
    }
    throw Error("the file is empty", path, "");
}

// Turns label strings and integers into class indices. Names come from task.labels, else the
// format's own (RTE); digits ("0", "1") are accepted when there are no names, and always for SST-2.
struct Classes {
    std::vector<std::string> names;
    bool digits = true;
    int64_t n = 2;

    std::string list() const {
        std::vector<std::string> all = names;
        for (int64_t i = 0; digits && i < n; ++i) all.push_back(std::to_string(i));
        return join(all);
    }
    [[noreturn]] void reject(const std::string& label, const std::string& where) const {
        throw Error("label '" + shorten(label) + "' is not one of the classes: " + list(), where,
                    "set task.num_classes and task.labels to the data's classes, or data.on_error: skip");
    }
    int64_t of(const std::string& label, const std::string& where) const {
        for (size_t i = 0; i < names.size(); ++i)
            if (names[i] == label) return static_cast<int64_t>(i);
        if (digits && !label.empty() && label.size() < 10 && label.find_first_not_of("0123456789") == std::string::npos) {
            const int64_t v = std::stoll(label);
            if (v < n) return v;
        }
        reject(label, where);
    }
    int64_t of(const nlohmann::json& label, const std::string& where) const {
        if (label.is_string()) return of(label.get<std::string>(), where);
        if (!label.is_number_integer()) throw Error("label must be a class index or name, got " + shorten(label.dump()), where, "");
        if ((label.is_number_unsigned() || label.get<int64_t>() >= 0) && label.get<uint64_t>() < static_cast<uint64_t>(n)) {
            return label.get<int64_t>();
        }
        reject(label.dump(), where);
    }
};

Classes classes_for(const std::string& format, const TaskReadOptions& o) {
    Classes c;
    c.n = o.num_classes;
    c.names = !o.labels.empty() ? o.labels : format == "rte" ? std::vector<std::string>{"entailment", "not_entailment"}
                                                              : std::vector<std::string>{};
    if (c.names.size() > static_cast<size_t>(c.n)) c.names.resize(static_cast<size_t>(c.n));
    c.digits = c.names.empty() || format == "sst2";
    return c;
}

std::string text_field(const std::string& raw, const std::string& what, const std::string& where) {
    std::string t = trim(raw);
    if (t.empty()) throw Error("empty " + what, where, "");
    return t;
}

double check_score(double v, const TaskReadOptions& o, const std::string& where) {
    if (v < o.score_min || v > o.score_max) {
        throw Error("score " + num(v) + " is outside " + num(o.score_min) + "-" + num(o.score_max), where,
                    "set task.score_min / task.score_max to the data's range, or data.on_error: skip");
    }
    return v;
}

double parse_score(const std::string& raw, const TaskReadOptions& o, const std::string& where) {
    const std::string t = trim(raw);
    char* end = nullptr;
    const double v = t.empty() ? 0.0 : std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v)) {
        throw Error("score '" + shorten(raw) + "' is not a number", where, "");
    }
    return check_score(v, o, where);
}

TaskExample from_row(const TableFormat& f, const std::vector<std::string>& c, const Classes& classes,
                     const TaskReadOptions& o, const std::string& where) {
    const std::string kind = f.sep == '\t' ? " tab" : " comma";
    if (c.size() != f.columns) {
        throw Error("expected " + std::to_string(f.columns) + kind + "-separated fields, found " + std::to_string(c.size()), where, "");
    }
    TaskExample ex;
    ex.where = where;
    const std::string name = f.name;
    if (name == "sst2") {
        ex.text = text_field(c[0], "sentence", where);
        ex.label = classes.of(c[1], where);
    } else if (name == "rte") {
        ex.text = text_field(c[1], "sentence1", where);
        ex.text_b = text_field(c[2], "sentence2", where);
        ex.label = classes.of(c[3], where);
    } else if (name == "stsb") {
        ex.text = text_field(c[7], "sentence1", where);
        ex.text_b = text_field(c[8], "sentence2", where);
        ex.score = parse_score(c[9], o, where);
    } else {  // story_cloze
        for (size_t i = 1; i <= 4; ++i) ex.text += (i > 1 ? " " : "") + text_field(c[i], "InputSentence" + std::to_string(i), where);
        ex.choices = {text_field(c[5], "RandomFifthSentenceQuiz1", where), text_field(c[6], "RandomFifthSentenceQuiz2", where)};
        if (c[7] != "1" && c[7] != "2") throw Error("AnswerRightEnding must be 1 or 2, not '" + shorten(c[7]) + "'", where, "");
        ex.label = c[7] == "1" ? 0 : 1;
    }
    return ex;
}

std::string key_or(const std::string& configured, const char* fallback) { return configured.empty() ? fallback : configured; }

TaskExample from_json(const nlohmann::json& r, const Classes& classes, const TaskReadOptions& o, const std::string& where) {
    static const char* kText[] = {"text", "premise", "text_a", "context"};
    static const char* kTextB[] = {"", "hypothesis", "text_b", ""};
    const auto t = static_cast<size_t>(o.type);
    const std::string text_key = key_or(o.fields.text, kText[t]), label_key = key_or(o.fields.label, "label");
    TaskExample ex;
    ex.where = where;
    ex.text = text_field(json_string_field(r, text_key, where), "\"" + text_key + "\"", where);
    if (o.type == TaskType::Entailment || o.type == TaskType::Similarity) {
        const std::string key = key_or(o.fields.text_b, kTextB[t]);
        ex.text_b = text_field(json_string_field(r, key, where), "\"" + key + "\"", where);
    }
    if (!r.contains(label_key)) throw Error("missing field \"" + label_key + "\"", where, "set data.fields.label");
    const auto& label = r.at(label_key);
    if (o.type == TaskType::MultipleChoice) {
        const std::string key = key_or(o.fields.choices, "choices");
        if (!r.contains(key) || !r.at(key).is_array() || r.at(key).size() < 2) {
            throw Error("field \"" + key + "\" must be a list of at least 2 choices", where, "set data.fields.choices");
        }
        for (const auto& choice : r.at(key)) {
            if (!choice.is_string()) throw Error("each of \"" + key + "\" must be a string", where, "");
            ex.choices.push_back(text_field(choice.get<std::string>(), "choice", where));
        }
        const auto k = static_cast<int64_t>(ex.choices.size());
        if (!label.is_number_integer() || label.get<int64_t>() < 0 || label.get<int64_t>() >= k) {
            throw Error("label must be the right choice's index, 0-" + std::to_string(k - 1) + ", got " + shorten(label.dump()), where, "");
        }
        ex.label = label.get<int64_t>();
    } else if (o.type == TaskType::Similarity && o.num_classes == 1) {
        if (!label.is_number()) throw Error("label must be a number (the score), got " + shorten(label.dump()), where, "");
        ex.score = check_score(label.get<double>(), o, where);
    } else {
        ex.label = classes.of(label, where);
    }
    return ex;
}

// Reads a TSV/CSV file: the header is checked (format auto or not), then one example per line.
void read_table(const std::string& file, const TableFormat& f, const TaskReadOptions& o, std::vector<TaskExample>& out,
                const SkipFn& skip) {
    size_t header_no = 0;
    const std::string header = first_line(file, &header_no);
    if (!header_fits(f, header)) {
        throw Error("the first line is not a " + std::string(f.describe) + " header: '" + shorten(header) + "'",
                    file + ":" + std::to_string(header_no),
                    std::string("expected '") + f.header + (f.exact ? "'" : "...'") + "; or set data.format: auto");
    }
    const Classes classes = classes_for(f.name, o);
    std::ifstream in(file, std::ios::binary);
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {  // getline also returns a last line without '\n'
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (n <= header_no || trim(line).empty()) continue;
        const std::string where = file + ":" + std::to_string(n);
        try {
            out.push_back(from_row(f, f.sep == '\t' ? split_tabs(line) : split_csv(line, where), classes, o, where));
        } catch (const Error& e) {
            if (!skip) throw;
            skip(e);
        }
    }
}

}  // namespace

bool task_type_of_format(const std::string& format, TaskType& type) {
    const TableFormat* f = find_table(format);
    if (f) type = f->type;
    return f != nullptr;
}

std::string detect_task_format(const std::string& path) {
    const auto ext = std::filesystem::path(path).extension();
    if (ext == ".jsonl" || ext == ".json" || ext == ".gz") return "jsonl";
    const std::string line = first_line(path);
    const char c = line[line.find_first_not_of(" \t")];
    if (c == '{' || c == '[') return "jsonl";
    for (const auto& f : kTables)
        if (header_fits(f, line)) return f.name;
    throw Error("cannot tell the task data format from the first line '" + shorten(line) + "'", path,
                std::string("known formats: ") + kKnownFormats + "; set data.format, or convert the file to JSONL");
}

std::vector<TaskExample> read_task_examples(const std::vector<std::string>& files, const TaskReadOptions& opts,
                                            TaskReadStats* stats_out) {
    if (files.empty()) throw Error("no task data files given", "data.files", "list the task's data files");
    if (opts.format != "auto" && opts.format != "jsonl" && !find_table(opts.format)) {
        throw Error("unknown task data format '" + opts.format + "'", "data.format", std::string("use auto, ") + kKnownFormats);
    }
    TaskReadStats stats;
    const SkipFn skip = count_skips(opts.skip_bad, stats.skipped, stats.first_skip);
    std::vector<TaskExample> out;
    for (const auto& file : files) {
        const std::string format = opts.format == "auto" ? detect_task_format(file) : opts.format;
        if (format == "jsonl") {
            const Classes classes = classes_for(format, opts);
            read_records(
                file, [&](const nlohmann::json& r, const std::string& where) { out.push_back(from_json(r, classes, opts, where)); },
                skip);
            continue;
        }
        const TableFormat& f = *find_table(format);
        if (f.type != opts.type) {
            throw Error(std::string("this is ") + f.describe + " data but task.type is " + name_of(opts.type), file,
                        "set task.type: " + name_of(f.type));
        }
        if (format == "stsb" && opts.num_classes != 1) {
            throw Error("STS-B scores are a regression target but task.num_classes is " + std::to_string(opts.num_classes), file,
                        "set task.num_classes: 1");
        }
        read_table(file, f, opts, out, skip);
    }
    if (out.empty()) {
        throw Error("no usable examples in " + join(files) + (stats.skipped ? " (" + std::to_string(stats.skipped) + " skipped as bad)" : ""),
                    files.front(), "check the files, data.format and task.type");
    }
    if (stats_out) *stats_out = stats;
    return out;
}

}  // namespace rlhf
