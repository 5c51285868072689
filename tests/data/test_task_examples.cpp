// GPT-1 task data: the four shipped files as they are (counts, labels, GLUE's literal quotes),
// format detection, every bad-row error with its file:line, skip_bad, and JSONL for each type.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include "rlhf/core/error.h"
#include "rlhf/data/task_examples.h"
#include "support/helpers.h"

using namespace rlhf;
using Catch::Contains;

namespace {

TaskReadOptions options(TaskType type, int num_classes = 2) {
    TaskReadOptions o;
    o.type = type;
    o.num_classes = num_classes;
    return o;
}

std::vector<TaskExample> read_one(const test::TempDir& dir, const std::string& name, const std::string& text,
                                  const TaskReadOptions& opts, TaskReadStats* stats = nullptr) {
    test::write_text(dir / name, text);
    return read_task_examples({(dir / name).string()}, opts, stats);
}

// The Error's one-line form ("where: what (hint: ...)"); "" when nothing is thrown.
std::string error_of(const test::TempDir& dir, const std::string& name, const std::string& text, const TaskReadOptions& opts) {
    try {
        read_one(dir, name, text, opts);
    } catch (const Error& e) {
        return e.one_line();
    }
    return "";
}

std::map<int64_t, int64_t> label_counts(const std::vector<TaskExample>& examples) {
    std::map<int64_t, int64_t> counts;
    for (const auto& ex : examples) ++counts[ex.label];
    return counts;
}

const std::string kStoryHeader =
    "InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4,RandomFifthSentenceQuiz1,"
    "RandomFifthSentenceQuiz2,AnswerRightEnding\n";
const std::string kStsbHeader = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";

std::string stsb_row(const std::string& score) {
    return "0\tmain-news\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t" + score + "\n";
}

}  // namespace

TEST_CASE("task data: the four shipped GPT-1 files read as they are", "[data][task_data][shared]") {
    const auto sst2 = test::shared_data_or_skip("gpt1-tasks/sst2/train.tsv").string();
    const auto rte = test::shared_data_or_skip("gpt1-tasks/rte/train.tsv").string();
    const auto stsb = test::shared_data_or_skip("gpt1-tasks/stsb/train.tsv").string();
    const auto cloze = test::shared_data_or_skip("gpt1-tasks/story-cloze/cloze_test_val__spring2016.csv").string();
    REQUIRE(detect_task_format(sst2) == "sst2");
    REQUIRE(detect_task_format(rte) == "rte");
    REQUIRE(detect_task_format(stsb) == "stsb");
    REQUIRE(detect_task_format(cloze) == "story_cloze");

    auto s = read_task_examples({sst2}, options(TaskType::Classification));
    REQUIRE(s.size() == 67349);
    REQUIRE(label_counts(s) == std::map<int64_t, int64_t>{{0, 29780}, {1, 37569}});
    REQUIRE(s[0].text == "hide new secretions from the parental units");  // GLUE's trailing space is gone
    REQUIRE(s[0].where == sst2 + ":2");
    REQUIRE(std::count_if(s.begin(), s.end(), [](const TaskExample& ex) { return ex.text.back() == ' '; }) == 0);

    auto r = read_task_examples({rte}, options(TaskType::Entailment));
    REQUIRE(r.size() == 2490);
    REQUIRE(label_counts(r) == std::map<int64_t, int64_t>{{0, 1249}, {1, 1241}});
    REQUIRE(r[1].label == 0);  // "entailment"
    // Row index 50 (line 52) opens with a quotation: a CSV reader would eat the quote, we keep it.
    REQUIRE(r[50].where == rte + ":52");
    REQUIRE(r[50].text.rfind("\"Instead of action on crime,", 0) == 0);
    REQUIRE_THAT(r[50].text, Contains("gun crime.\" said Harper."));
    REQUIRE(r[50].text_b == "Garry Breitkreuz is a member of the Conservative Party.");

    auto t = read_task_examples({stsb}, options(TaskType::Similarity, 1));
    REQUIRE(t.size() == 5749);
    double sum = 0, lo = 5, hi = 0;
    int64_t with_label = 0;
    for (const auto& ex : t) {
        with_label += ex.label != -1;
        sum += ex.score, lo = std::min(lo, ex.score), hi = std::max(hi, ex.score);
    }
    REQUIRE(with_label == 0);
    REQUIRE(lo == 0.0);
    REQUIRE(hi == 5.0);
    REQUIRE(sum / t.size() == Approx(2.701).margin(0.001));
    REQUIRE(t[1].text == "A man is playing a large flute.");
    REQUIRE(t[1].score == 3.8);

    auto c = read_task_examples({cloze}, options(TaskType::MultipleChoice));
    REQUIRE(c.size() == 1871);
    REQUIRE(label_counts(c) == std::map<int64_t, int64_t>{{0, 962}, {1, 909}});
    REQUIRE(c[0].text ==
            "Rick grew up in a troubled household. He never found good support in family, and turned to gangs. "
            "It wasn't long before Rick got shot in a robbery. The incident caused him to turn a new leaf.");
    REQUIRE(c[0].choices == std::vector<std::string>{"He is happy now.", "He joined a gang."});
    REQUIRE(c[103].where == cloze + ":105");  // quoted comma and "" escapes
    REQUIRE(c[103].choices[1] == "Michelle named the cat, \"Socks.\"");
    REQUIRE(c.back().where == cloze + ":1872");  // the last line has no '\n'
    REQUIRE(c.back().label == 1);
}

// Task data: small files of each format, CSV quoting, detection.
TEST_CASE("task data: each format's files, CSV quoting, detection", "[data][task_data]") {
    test::TempDir dir;
    auto s = read_one(dir, "s.tsv", "sentence\tlabel\n  good fun \t1\n\nbad\t0", options(TaskType::Classification));
    REQUIRE(s.size() == 2);
    REQUIRE(s[0].text == "good fun");
    REQUIRE(s[0].label == 1);
    REQUIRE(s[1].where == (dir / "s.tsv").string() + ":4");  // blank line 3 skipped; no final newline

    auto sst_named = options(TaskType::Classification);
    sst_named.labels = {"negative", "positive"};  // names for SST-2's 0|1, which stay indices
    auto sn = read_one(dir, "sn.tsv", "sentence\tlabel\nok\t1\nmeh\tnegative\n", sst_named);
    REQUIRE(sn[0].label == 1);
    REQUIRE(sn[1].label == 0);

    auto named = options(TaskType::Entailment);
    named.labels = {"not_entailment", "entailment"};  // task.labels reorders the classes
    auto r = read_one(dir, "r.tsv", "index\tsentence1\tsentence2\tlabel\n0\tHe said \"hi\".\tHe spoke.\tentailment\n", named);
    REQUIRE(r[0].text == "He said \"hi\".");
    REQUIRE(r[0].label == 1);

    auto c = read_one(dir, "c.csv", kStoryHeader + "id,\"One, two.\",Three.,\"Say \"\"hi\"\".\",Four.,\"A, b\",\"\"\"C\"\"\",2\n",
                      options(TaskType::MultipleChoice));
    REQUIRE(c[0].text == "One, two. Three. Say \"hi\". Four.");
    REQUIRE(c[0].choices == std::vector<std::string>{"A, b", "\"C\""});
    REQUIRE(c[0].label == 1);
    REQUIRE(detect_task_format((dir / "c.csv").string()) == "story_cloze");

    test::write_text(dir / "j.txt", "\n{\"text\": \"x\", \"label\": 0}\n");
    REQUIRE(detect_task_format((dir / "j.txt").string()) == "jsonl");
    REQUIRE(detect_task_format((dir / "missing.jsonl").string()) == "jsonl");  // by name; read_records reports it
    test::write_text(dir / "odd.tsv", "id\ttext\tlabel\n1\tx\t0\n");
    REQUIRE_THROWS_WITH(detect_task_format((dir / "odd.tsv").string()),
                        Contains("odd.tsv") && Contains("'id\ttext\tlabel'") && Contains("sst2, rte, stsb, story_cloze, jsonl"));
}

TEST_CASE("task data: each bad row is one error naming file:line", "[data][task_data]") {
    test::TempDir dir;
    const auto cls = options(TaskType::Classification), ent = options(TaskType::Entailment);
    const auto sim = options(TaskType::Similarity, 1), mc = options(TaskType::MultipleChoice);
    const std::string sst2 = "sentence\tlabel\ngood\t1\n", rte = "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n";

    CHECK_THAT(error_of(dir, "bad.tsv", sst2 + "meh\t2\n", cls), Contains("bad.tsv:3") && Contains("label '2' is not one of the classes: 0, 1"));
    CHECK_THAT(error_of(dir, "rte.tsv", rte + "1\ta\tb\tmaybe\n", ent),
               Contains("rte.tsv:3") && Contains("label 'maybe' is not one of the classes: entailment, not_entailment"));
    CHECK_THAT(error_of(dir, "end.csv", kStoryHeader + "id,a,b,c,d,e,f,1\nid,a,b,c,d,e,f,3\n", mc),
               Contains("end.csv:3") && Contains("AnswerRightEnding must be 1 or 2, not '3'"));
    CHECK_THAT(error_of(dir, "hi.tsv", kStsbHeader + stsb_row("5.000") + stsb_row("5.5"), sim),
               Contains("hi.tsv:3") && Contains("score 5.5 is outside 0-5"));
    CHECK_THAT(error_of(dir, "abc.tsv", kStsbHeader + stsb_row("abc"), sim), Contains("abc.tsv:2") && Contains("score 'abc' is not a number"));
    CHECK_THAT(error_of(dir, "nan.tsv", kStsbHeader + stsb_row("nan"), sim), Contains("nan.tsv:2") && Contains("not a number"));
    CHECK_THAT(error_of(dir, "part.tsv", kStsbHeader + stsb_row("4.2x"), sim), Contains("part.tsv:2") && Contains("'4.2x'"));
    CHECK_THAT(error_of(dir, "cols.tsv", rte + "1\ta\tb\tstray field\tentailment\n", ent),
               Contains("cols.tsv:3") && Contains("expected 4 tab-separated fields, found 5"));
    CHECK_THAT(error_of(dir, "empty.tsv", sst2 + "   \t0\n", cls), Contains("empty.tsv:3") && Contains("empty sentence"));
    CHECK_THAT(error_of(dir, "open.csv", kStoryHeader + "id,\"a,b,c,d,e,f,1\n", mc),
               Contains("open.csv:2") && Contains("quoted field runs to the end of the line"));
    CHECK_THAT(error_of(dir, "few.csv", kStoryHeader + "id,a,b,c,d,e,1\n", mc),
               Contains("few.csv:2") && Contains("expected 8 comma-separated fields, found 7"));

    // A file that does not fit the task, or a header that does not fit data.format, stops at once.
    const Error wrong = [&] {
        try {
            read_one(dir, "type.tsv", rte, cls);
        } catch (const Error& e) {
            return e;
        }
        return Error("");
    }();
    CHECK(wrong.where() == (dir / "type.tsv").string());
    CHECK_THAT(wrong.message(), Contains("is GLUE RTE (entailment) data but task.type is classification"));
    CHECK_THAT(wrong.hint(), Contains("task.type: entailment"));
    CHECK_THAT(error_of(dir, "sc.csv", kStoryHeader + "id,a,b,c,d,e,f,1\n", options(TaskType::Similarity, 1)),
               Contains("Story Cloze (multiple_choice) data but task.type is similarity"));
    CHECK_THAT(error_of(dir, "cls.tsv", kStsbHeader + stsb_row("3"), options(TaskType::Similarity, 2)),
               Contains("regression target") && Contains("task.num_classes: 1"));
    auto unknown = cls;
    unknown.format = "csv";
    CHECK_THAT(error_of(dir, "f.tsv", sst2, unknown), Contains("data.format") && Contains("'csv'"));
    auto as_rte = ent;
    as_rte.format = "rte";
    CHECK_THAT(error_of(dir, "hdr.tsv", sst2, as_rte), Contains("hdr.tsv:1") && Contains("not a GLUE RTE (entailment) header"));
    CHECK_THAT(error_of(dir, "none.tsv", "", cls), Contains("none.tsv") && Contains("empty"));
    CHECK_THAT(error_of(dir, "hdronly.tsv", "sentence\tlabel\n", cls), Contains("no usable examples in") && Contains("hdronly.tsv"));
    REQUIRE_THROWS_WITH(read_task_examples({(dir / "nope.tsv").string()}, cls), Contains("nope.tsv") && Contains("not found"));
}

// Task data: skip_bad counts bad rows and keeps the rest; a bad file still stops.
TEST_CASE("task data: skip counts bad rows, a bad file still stops", "[data][task_data]") {
    test::TempDir dir;
    auto opts = options(TaskType::Classification);
    opts.skip_bad = true;
    TaskReadStats stats;
    auto kept = read_one(dir, "mixed.tsv", "sentence\tlabel\na\t0\nb\t7\nc\t1\n\t1\nd\t0\n", opts, &stats);
    REQUIRE(kept.size() == 3);
    REQUIRE(kept[2].text == "d");
    REQUIRE(stats.skipped == 2);
    REQUIRE_THAT(stats.first_skip, Contains("mixed.tsv:3") && Contains("label '7'"));

    REQUIRE_THROWS_WITH(read_one(dir, "rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n", opts),
                        Contains("task.type is classification"));
    REQUIRE_THROWS_WITH(read_one(dir, "all.tsv", "sentence\tlabel\na\t5\n", opts, &stats), Contains("1 skipped as bad"));
}

// Task data: JSONL for each task type, default and renamed keys.
TEST_CASE("task data: JSONL per task type, default and renamed keys", "[data][task_data]") {
    test::TempDir dir;
    auto c = read_one(dir, "c.jsonl", "{\"text\": \" fine \", \"label\": 1}\n{\"text\": \"bad\", \"label\": \"0\"}\n",
                      options(TaskType::Classification));
    REQUIRE(c[0].text == "fine");
    REQUIRE(label_counts(c) == std::map<int64_t, int64_t>{{0, 1}, {1, 1}});
    REQUIRE(c[1].where == (dir / "c.jsonl").string() + ":2");

    auto e = read_one(dir, "e.jsonl", "{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": \"not_entailment\"}\n",
                      [] {
                          auto o = options(TaskType::Entailment);
                          o.labels = {"entailment", "not_entailment"};
                          return o;
                      }());
    REQUIRE(e[0].text == "p");
    REQUIRE(e[0].text_b == "h");
    REQUIRE(e[0].label == 1);

    auto s = read_one(dir, "s.jsonl", "{\"text_a\": \"a\", \"text_b\": \"b\", \"label\": 3.25}\n", options(TaskType::Similarity, 1));
    REQUIRE(s[0].score == 3.25);
    REQUIRE(s[0].label == -1);

    auto m = read_one(dir, "m.json", "[{\"context\": \"c\", \"choices\": [\"x\", \"y\", \"z\"], \"label\": 2}]",
                      options(TaskType::MultipleChoice));
    REQUIRE(m[0].choices == std::vector<std::string>{"x", "y", "z"});
    REQUIRE(m[0].label == 2);

    auto renamed = options(TaskType::Entailment);
    renamed.fields = {"sentence1", "sentence2", "", "gold"};
    auto rn = read_one(dir, "rn.jsonl", "{\"sentence1\": \"p\", \"sentence2\": \"h\", \"gold\": 0}\n", renamed);
    REQUIRE(rn[0].text_b == "h");
    REQUIRE(rn[0].label == 0);
    auto mc = options(TaskType::MultipleChoice);
    mc.fields = {"story", "", "endings", "answer"};
    REQUIRE(read_one(dir, "rm.jsonl", "{\"story\": \"s\", \"endings\": [\"a\", \"b\"], \"answer\": 1}\n", mc)[0].choices[1] == "b");
    auto cls = options(TaskType::Classification);
    cls.fields = {"sentence", "", "", "y"};
    REQUIRE(read_one(dir, "rc.jsonl", "{\"sentence\": \"s\", \"y\": 1}\n", cls)[0].label == 1);
    auto sim = options(TaskType::Similarity, 1);
    sim.fields = {"s1", "s2", "", "score"};
    REQUIRE(read_one(dir, "rs.jsonl", "{\"s1\": \"a\", \"s2\": \"b\", \"score\": 0.5}\n", sim)[0].score == 0.5);

    CHECK_THAT(error_of(dir, "key.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\"}\n", options(TaskType::Classification)),
               Contains("key.jsonl:2") && Contains("missing field \"label\""));
    CHECK_THAT(error_of(dir, "tb.jsonl", "{\"premise\": \"p\", \"label\": 0}\n", options(TaskType::Entailment)),
               Contains("tb.jsonl:1") && Contains("\"hypothesis\""));
    mc = options(TaskType::MultipleChoice);
    CHECK_THAT(error_of(dir, "one.jsonl", "{\"context\": \"c\", \"choices\": [\"x\"], \"label\": 0}\n", mc),
               Contains("one.jsonl:1") && Contains("at least 2 choices"));
    CHECK_THAT(error_of(dir, "k.jsonl", "{\"context\": \"c\", \"choices\": [\"x\", \"y\"], \"label\": 2}\n", mc),
               Contains("k.jsonl:1") && Contains("0-1, got 2"));
    CHECK_THAT(error_of(dir, "neg.jsonl", "{\"text\": \"a\", \"label\": -1}\n", options(TaskType::Classification)),
               Contains("neg.jsonl:1") && Contains("label '-1' is not one of the classes"));
    auto names = options(TaskType::Classification);
    names.labels = {"neg", "pos"};
    CHECK_THAT(error_of(dir, "nm.jsonl", "{\"text\": \"a\", \"label\": \"positive\"}\n", names),
               Contains("nm.jsonl:1") && Contains("not one of the classes: neg, pos"));
    CHECK_THAT(error_of(dir, "sc.jsonl", "{\"text_a\": \"a\", \"text_b\": \"b\", \"label\": \"3\"}\n", options(TaskType::Similarity, 1)),
               Contains("sc.jsonl:1") && Contains("must be a number"));
}

TEST_CASE("task types parse by name and formats map to them", "[data][task_data]") {
    REQUIRE(enum_from_name<TaskType>("multiple_choice") == TaskType::MultipleChoice);
    REQUIRE(name_of(TaskType::Similarity) == "similarity");
    REQUIRE_FALSE(enum_from_name<TaskType>("regression"));
    TaskType t = TaskType::Classification;
    REQUIRE(task_type_of_format("rte", t));
    REQUIRE(t == TaskType::Entailment);
    REQUIRE(!task_type_of_format("jsonl", t));
}
