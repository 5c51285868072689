// Labelled examples for GPT-1's task fine-tuning (Radford et al. 2018, section 3.3), read into one
// shape whatever the file. Four task types:
//
//   type             fields used                         target
//   classification   text                                label: class 0..N-1
//   entailment       text (premise), text_b (hypothesis) label: class 0..N-1
//   similarity       text, text_b (a pair, unordered)    score in [score_min, score_max] (N = 1,
//                                                        regression) or label 0..N-1 (N >= 2)
//   multiple_choice  text (context), choices (K >= 2)    label: the right choice 0..K-1
//
// File formats (data.format; auto = decided from the file's first line):
//   sst2         GLUE SST-2 TSV, header "sentence\tlabel", label 0|1          -> classification
//   rte          GLUE RTE TSV, "index\tsentence1\tsentence2\tlabel",
//                label entailment (0) | not_entailment (1)                   -> entailment
//   stsb         GLUE STS-B TSV, 10 columns, sentence1, sentence2, score     -> similarity
//   story_cloze  Story Cloze CSV (quoted fields), InputSentence1..4 joined by
//                spaces, RandomFifthSentenceQuiz1/2, AnswerRightEnding 1|2   -> multiple_choice
//   jsonl        one JSON object per line (or .gz, or one JSON array); keys per type below
//
// GLUE TSVs are split on tabs only, with no quote handling: their texts hold literal '"'
// (Python's csv.QUOTE_NONE). Texts are trimmed of surrounding spaces (SST-2 has one before the tab).
//
// JSONL keys (each renamable through TaskReadOptions' fields; "" = the default):
//   classification   {"text", "label"}
//   entailment       {"premise", "hypothesis", "label"}
//   similarity       {"text_a", "text_b", "label"}       label: a number (the score, N = 1) or a class
//   multiple_choice  {"context", "choices": [..], "label"}
// A label is an integer class index, or a string: one of `labels` when given, else the decimal
// form of an index ("0", "1"); SST-2's 0|1 stay indices even with `labels`. A multiple_choice
// label is an integer. Anything else is an error naming file:line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rlhf/config/enums.h"  // TaskType

namespace rlhf {

struct TaskExample {
    std::string text;                  // the text / premise / sentence 1 / the story's context
    std::string text_b;                // hypothesis / sentence 2; empty otherwise
    std::vector<std::string> choices;  // multiple_choice: the K candidate answers
    int64_t label = -1;                // the class, or the right choice; -1 for regression
    double score = 0.0;                // similarity with N = 1: the target score
    std::string where;                 // file:line
};

struct TaskReadOptions {
    TaskType type = TaskType::Classification;
    std::string format = "auto";       // auto | sst2 | rte | stsb | story_cloze | jsonl
    int num_classes = 2;               // classes (similarity: 1 = regression on the score)
    std::vector<std::string> labels;   // class names in index order (e.g. [entailment, not_entailment]); empty = indices
    double score_min = 0.0, score_max = 5.0;  // similarity regression: the allowed score range
    struct Fields {                    // JSONL keys; "" = the type's default (see above)
        std::string text, text_b, choices, label;
    } fields;
    bool skip_bad = false;             // data.on_error: skip
};

struct TaskReadStats {
    int64_t skipped = 0;     // bad rows left out (skip_bad)
    std::string first_skip;  // the first skipped row's error, for the log
};

// Reads every file in order. Throws rlhf::Error naming file:line on the first bad row unless
// skip_bad (then counted in stats): a wrong number of fields, an empty text, a label outside the
// classes, a Story Cloze right ending other than 1 or 2, a score outside [score_min, score_max]
// or not a number, fewer than 2 choices. A file whose format does not fit `type` (an RTE file
// for a classification task, say) or that no format recognises is an rlhf::Error naming the file
// and both. Always throws when no example remains.
std::vector<TaskExample> read_task_examples(const std::vector<std::string>& files, const TaskReadOptions& opts,
                                            TaskReadStats* stats = nullptr);

// The format a file is in, from its first line (what format "auto" does): "sst2", "rte", "stsb",
// "story_cloze" or "jsonl"; an rlhf::Error when none fits.
std::string detect_task_format(const std::string& path);

// The task type a format holds (jsonl: none; returns false).
bool task_type_of_format(const std::string& format, TaskType& type);

}  // namespace rlhf
