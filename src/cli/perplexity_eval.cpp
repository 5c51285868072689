// rlhf eval --perplexity: how well a checkpoint predicts held-out text. Each document is encoded
// as the tokenizer's post-processor does (Llama-3: <|begin_of_text|> first; GPT-2 and ours: the
// text alone), cut to the model's window, and every token after the first is predicted. The
// figures are per predicted token over all documents: nll = mean -log p, perplexity = exp(nll).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/cli/commands.h"
#include "rlhf/core/error.h"
#include "rlhf/core/precision.h"
#include "rlhf/core/progress.h"
#include "rlhf/core/runtime.h"
#include "rlhf/data/text_documents.h"

namespace rlhf::cli {

namespace {

// Σ -log p(token | before) over each row's predicted tokens: ids (B, T) right-padded, lengths (B).
// Logits past the tokenizer's vocabulary (Qwen pads its embedding to 151,936 rows) are no token:
// they are left out of the softmax.
std::vector<double> row_nll_sums(GptImpl& model, const torch::Tensor& ids, const std::vector<int64_t>& lengths,
                                 int64_t vocab_limit, bool bf16) {
    torch::NoGradGuard no_grad;
    torch::Tensor logits;
    {
        AutocastGuard autocast(bf16, ids.device().type());
        logits = model.logits(model.forward(ids));  // (B, T, V)
    }
    logits = logits.narrow(-1, 0, vocab_limit).to(torch::kFloat32).narrow(1, 0, ids.size(1) - 1);  // (B, T-1, V')
    const auto targets = ids.narrow(1, 1, ids.size(1) - 1);                                        // (B, T-1)
    const auto nll = -torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);  // (B, T-1)
    const auto positions = torch::arange(ids.size(1) - 1, ids.options()).unsqueeze(0);             // (1, T-1)
    const auto lens = torch::tensor(lengths, ids.options()).unsqueeze(1);                          // (B, 1)
    const auto predicted = positions.lt(lens - 1);  // target t+1 is a real token
    const auto sums = (nll * predicted.to(torch::kFloat32)).sum(1).to(torch::kFloat64).cpu();
    return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

}  // namespace

int eval_perplexity(const PerplexityArgs& args) {
    if (args.data.empty()) throw Error("--perplexity needs the text to score", "--data", "a text file or JSONL with \"text\"");
    const auto docs = read_text_documents(args.data);
    Runtime rt = init_runtime(args.threads, 1337, args.device, "--device");
    LoadedModel m = load_model_from_checkpoint(args.checkpoint, rt.device, args.weights);
    const Tokenizer& tok = m.tokenizer;
    const int64_t window = m.model->config().block_size;

    // Encoded, cut to the window; a document of one token predicts nothing and is left out.
    std::vector<std::vector<int32_t>> encoded;
    std::vector<size_t> source;  // encoded[i] is docs[source[i]]
    int64_t cut = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
        auto ids = tok.encode_document(docs[i].text);
        if (static_cast<int64_t>(ids.size()) > window) {
            ids.resize(static_cast<size_t>(window));
            ++cut;
        }
        if (ids.size() < 2) continue;
        encoded.push_back(std::move(ids));
        source.push_back(i);
    }
    if (encoded.empty()) throw Error("no document has two tokens", args.data, "");
    if (cut > 0) spdlog::info("{} of {} documents cut to the model's {}-token window", cut, encoded.size(), window);

    std::ofstream out;
    if (!args.out.empty()) {
        out.open(args.out);
        if (!out) throw Error("cannot write", args.out, "check the directory exists");
    }
    double nll_sum = 0;
    int64_t predicted = 0;
    Progress bar("perplexity", static_cast<int64_t>(encoded.size()));
    for (size_t start = 0; start < encoded.size(); start += static_cast<size_t>(args.batch_size)) {
        const size_t end = std::min(encoded.size(), start + static_cast<size_t>(args.batch_size));
        int64_t longest = 0;
        for (size_t i = start; i < end; ++i) longest = std::max<int64_t>(longest, static_cast<int64_t>(encoded[i].size()));
        // Right padding: a causal model's predictions for the real tokens never see it.
        auto ids = torch::full({static_cast<int64_t>(end - start), longest}, tok.pad_id(), torch::kInt64);  // (B, T)
        std::vector<int64_t> lengths;
        for (size_t i = start; i < end; ++i) {
            const auto& e = encoded[i];
            ids[static_cast<int64_t>(i - start)].narrow(0, 0, static_cast<int64_t>(e.size()))
                .copy_(torch::tensor(std::vector<int64_t>(e.begin(), e.end())));
            lengths.push_back(static_cast<int64_t>(e.size()));
        }
        const auto sums = row_nll_sums(*m.model, ids.to(rt.device), lengths, tok.vocab_size(), wants_bf16(args.dtype));
        for (size_t b = 0; b < sums.size(); ++b) {
            const int64_t n = lengths[b] - 1;
            nll_sum += sums[b];
            predicted += n;
            if (out.is_open()) {
                const double nll = sums[b] / static_cast<double>(n);
                out << nlohmann::json{{"where", docs[source[start + b]].where}, {"tokens", n}, {"nll", nll},
                                      {"perplexity", std::exp(nll)}}.dump() << "\n";
            }
        }
        bar.update(static_cast<int64_t>(end));
    }
    bar.finish();
    const double nll = nll_sum / static_cast<double>(predicted);
    const nlohmann::json line = {{"documents", encoded.size()}, {"tokens", predicted}, {"nll", nll}, {"perplexity", std::exp(nll)}};
    std::cout << line.dump() << std::endl;
    return 0;
}

}  // namespace rlhf::cli
