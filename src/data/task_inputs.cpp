#include "rlhf/data/task_inputs.h"

#include <torch/torch.h>

#include <algorithm>

#include "rlhf/core/error.h"

namespace rlhf {

TaskTokenIds task_token_ids(const Tokenizer& tokenizer) {
    TaskTokenIds ids{tokenizer.added_token_id(kTaskTokens[0]), tokenizer.added_token_id(kTaskTokens[1]),
                     tokenizer.added_token_id(kTaskTokens[2])};
    RLHF_CHECK(ids.start >= 0 && ids.delim >= 0 && ids.extract >= 0, "tokenizer",
               "the tokenizer lacks the task tokens <|start|> <|delim|> <|extract|>",
               "a classify checkpoint has them; start from init_from so the stage adds them");
    return ids;
}

namespace {

// Cuts `a` and `b` from their ends until together they fit `budget` tokens, always shortening
// the longer one (a long premise gives way before a short hypothesis does) and both when they
// are equal, so that swapping a and b swaps the result (similarity stays symmetric).
bool fit_pair(std::vector<int32_t>& a, std::vector<int32_t>& b, size_t budget) {
    bool cut = false;
    while (a.size() + b.size() > budget) {
        const size_t la = a.size(), lb = b.size();
        if (la >= lb) a.pop_back();
        if (lb >= la) b.pop_back();
        cut = true;
    }
    return cut;
}

std::vector<int32_t> row_of(const TaskTokenIds& t, const std::vector<int32_t>& a, const std::vector<int32_t>* b) {
    std::vector<int32_t> row{t.start};
    row.insert(row.end(), a.begin(), a.end());
    if (b) {
        row.push_back(t.delim);
        row.insert(row.end(), b->begin(), b->end());
    }
    row.push_back(t.extract);
    return row;
}

}  // namespace

TaskInput render_task_input(const TaskExample& example, TaskType type, const Tokenizer& tokenizer,
                            const TaskTokenIds& tokens, int64_t block_size, int64_t* truncated) {
    TaskInput in;
    in.label = example.label;
    in.score = example.score;
    auto a = tokenizer.encode(example.text);
    RLHF_CHECK(block_size >= 4, "model.block_size", "a window of " + std::to_string(block_size) + " tokens cannot hold a task input",
               "use a block_size of at least 32");
    const size_t budget2 = static_cast<size_t>(block_size) - 2, budget3 = static_cast<size_t>(block_size) - 3;
    bool cut = false;
    switch (type) {
        case TaskType::Classification:
            if (a.size() > budget2) {
                a.resize(budget2);
                cut = true;
            }
            in.rows.push_back(row_of(tokens, a, nullptr));
            break;
        case TaskType::Entailment:
        case TaskType::Similarity: {
            auto b = tokenizer.encode(example.text_b);
            cut = fit_pair(a, b, budget3);
            in.rows.push_back(row_of(tokens, a, &b));
            if (type == TaskType::Similarity) in.rows.push_back(row_of(tokens, b, &a));  // the other order
            break;
        }
        case TaskType::MultipleChoice: {
            std::vector<std::vector<int32_t>> answers;
            size_t longest = 0;
            for (const auto& c : example.choices) {
                answers.push_back(tokenizer.encode(c));
                longest = std::max(longest, answers.back().size());
            }
            // Fit the context against the longest answer, then cut each answer to what is left.
            std::vector<int32_t> longest_answer(longest);
            cut = fit_pair(a, longest_answer, budget3);
            for (auto& ans : answers) {
                if (ans.size() > longest_answer.size()) ans.resize(longest_answer.size());
                in.rows.push_back(row_of(tokens, a, &ans));
            }
            break;
        }
    }
    if (cut && truncated) ++*truncated;
    return in;
}

TaskBatch collate_task_inputs(const std::vector<const TaskInput*>& inputs, bool regression, int64_t pad_id) {
    RLHF_CHECK(!inputs.empty(), "task batch", "no examples to collate", "");
    TaskBatch b;
    b.examples = static_cast<int64_t>(inputs.size());
    b.rows_per_example = static_cast<int64_t>(inputs.front()->rows.size());
    int64_t T = 0;
    for (const auto* in : inputs) {
        if (static_cast<int64_t>(in->rows.size()) != b.rows_per_example) {
            throw Error("examples with different numbers of choices in one batch (" + std::to_string(b.rows_per_example) +
                            " and " + std::to_string(in->rows.size()) + ")",
                        "task batch", "give every multiple-choice example the same number of choices");
        }
        for (const auto& r : in->rows) T = std::max<int64_t>(T, static_cast<int64_t>(r.size()));
    }
    const int64_t R = b.examples * b.rows_per_example;
    b.ids = torch::full({R, T}, pad_id, torch::kLong);
    b.lm_targets = torch::full({R, T}, int64_t{-1}, torch::kLong);
    b.extract_pos = torch::empty({R}, torch::kLong);
    auto ids = b.ids.accessor<int64_t, 2>();
    auto targets = b.lm_targets.accessor<int64_t, 2>();
    auto pos = b.extract_pos.accessor<int64_t, 1>();
    int64_t r = 0;
    for (const auto* in : inputs) {
        for (const auto& row : in->rows) {
            const int64_t L = static_cast<int64_t>(row.size());
            for (int64_t t = 0; t < L; ++t) ids[r][t] = row[static_cast<size_t>(t)];
            for (int64_t t = 0; t + 1 < L; ++t) targets[r][t] = row[static_cast<size_t>(t + 1)];
            pos[r] = L - 1;
            ++r;
        }
    }
    if (regression) {
        b.labels = torch::empty({b.examples}, torch::kFloat);
        for (int64_t i = 0; i < b.examples; ++i) b.labels[i] = inputs[static_cast<size_t>(i)]->score;
    } else {
        b.labels = torch::empty({b.examples}, torch::kLong);
        for (int64_t i = 0; i < b.examples; ++i) b.labels[i] = inputs[static_cast<size_t>(i)]->label;
    }
    return b;
}

TaskBatch to_device(const TaskBatch& batch, const torch::Device& device) {
    TaskBatch b = batch;
    b.ids = b.ids.to(device);
    b.extract_pos = b.extract_pos.to(device);
    b.lm_targets = b.lm_targets.to(device);
    b.labels = b.labels.to(device);
    return b;
}

}  // namespace rlhf
