#include "rlhf/model/rollout_engine.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "rlhf/core/eval_mode.h"
#include "rlhf/core/precision.h"
#include "rlhf/model/sampling_streams.h"
#include "rlhf/model/token_sampler.h"

namespace rlhf {

using torch::indexing::None;
using torch::indexing::Slice;

namespace {

// What stays fixed while a batch is decoded.
struct Job {
    GptImpl& model;
    const std::vector<std::vector<int32_t>>& prompts;  // fitted (fit_prompts)
    const SamplingOptions& opts;
    const RolloutEngineOptions& engine;
    int64_t pad_id;
    torch::Tensor seeds;  // (B,) every row's stream
    torch::Device device;
    RolloutCounts& counts;
};

// The rows being decoded, one slot each; A = slots. Tensors are on the model's device, the
// vectors on the host (known without a sync: every slot advances one token per step).
struct ActiveRows {
    std::vector<int64_t> rows;        // each slot's row in the batch
    std::vector<int64_t> steps_host;  // tokens each slot has sampled
    torch::Tensor row_index;          // (A,) int64: rows, on the device
    torch::Tensor seeds;              // (A,) each slot's sampling stream
    torch::Tensor steps;              // (A,) int64: tokens sampled so far (the stream's step)
    torch::Tensor next_pos;           // (A, 1) int64: position of the next token (real tokens so far)
    torch::Tensor key_mask;           // (A, L) bool over the cache's columns: real keys
    torch::Tensor finished;           // (A,) bool: emitted a stop token or max_new_tokens
    torch::Tensor logits;             // (A, V): the next token's, after a forward or a prefill
    KvCache cache;                    // (A, nkv, capacity, hs) per layer; every row ends at column L

    int64_t size() const { return static_cast<int64_t>(rows.size()); }
};

// Keeps the slots `keep` (and the sampled `token` of each) in that order.
void keep_slots(ActiveRows& a, const std::vector<int64_t>& keep, torch::Tensor& token) {
    const auto index = torch::tensor(keep, torch::kLong).to(a.row_index.device());
    std::vector<int64_t> rows, steps;
    for (int64_t slot : keep) {
        rows.push_back(a.rows[static_cast<size_t>(slot)]);
        steps.push_back(a.steps_host[static_cast<size_t>(slot)]);
    }
    a.rows = std::move(rows);
    a.steps_host = std::move(steps);
    for (auto* t : {&a.row_index, &a.seeds, &a.steps, &a.next_pos, &a.key_mask, &a.finished, &token}) *t = t->index_select(0, index);
    a.cache.select_rows(index);
}

// Rows [first, first + count) join the batch: their prompts are prefilled (each distinct prompt
// once) and the cache is rebuilt with the running rows first, every row right-aligned to end at
// the last column L, which is as small as the longest row allows (columns no row uses are cut).
void admit(const Job& job, ActiveRows& a, int64_t first, int64_t count) {
    const auto t0 = std::chrono::steady_clock::now();
    // 1. The distinct prompts among the new rows, prefilled together.
    std::vector<std::vector<int32_t>> distinct;
    std::vector<int64_t> source;  // new row i's prompt is distinct[source[i]]
    std::map<std::vector<int32_t>, int64_t> seen;
    for (int64_t r = first; r < first + count; ++r) {
        const auto& prompt = job.prompts[static_cast<size_t>(r)];
        int64_t index = -1;
        if (job.engine.share_prefixes) {
            const auto found = seen.find(prompt);
            if (found != seen.end()) index = found->second;
        }
        if (index < 0) {
            index = static_cast<int64_t>(distinct.size());
            distinct.push_back(prompt);
            if (job.engine.share_prefixes) seen.emplace(prompt, index);
        }
        source.push_back(index);
    }
    auto [ids, mask] = left_pad(distinct, job.pad_id, job.device);  // (U, p)
    const int64_t U = ids.size(0), p = ids.size(1);
    KvCache prefill = job.model.make_cache(U, p);
    AttentionContext ctx{position_ids_from_mask(mask), mask, &prefill};
    const auto new_logits = job.model.logits(job.model.forward(ids, ctx).index({Slice(), -1}));  // (U, V)
    job.counts.prefill_rows += U;
    job.counts.prefill_tokens += U * p;
    const auto src = torch::tensor(source, torch::kLong).to(job.device);  // (R,)

    // 2. The cache rebuilt: the K running rows keep their last `kept_len` columns, the R new rows
    // take their prompt's p; padding before them is masked (and zero, so it is finite).
    const int64_t K = a.size(), R = count, N = job.opts.max_new_tokens;
    int64_t kept_len = 0;  // the longest running row: prompt + tokens so far
    for (int64_t s = 0; s < K; ++s) {
        const auto row = static_cast<size_t>(a.rows[static_cast<size_t>(s)]);
        kept_len = std::max(kept_len, static_cast<int64_t>(job.prompts[row].size()) + a.steps_host[static_cast<size_t>(s)]);
    }
    const int64_t L_old = a.cache.length, L = std::max(kept_len, p), capacity = L + N;
    KvCache cache = job.model.make_cache(K + R, capacity);
    cache.capacity = capacity;  // may pass block_size: the columns are not positions (see gpt.h)
    for (size_t layer = 0; layer < prefill.k.size(); ++layer) {
        for (const bool keys : {true, false}) {
            const auto& fresh = keys ? prefill.k[layer] : prefill.v[layer];  // (U, nkv, p, hs)
            auto buffer = torch::zeros({K + R, fresh.size(1), capacity, fresh.size(3)}, fresh.options());
            if (K > 0) {
                const auto& old = keys ? a.cache.k[layer] : a.cache.v[layer];
                buffer.index({Slice(0, K), Slice(), Slice(L - kept_len, L)})
                    .copy_(old.index({Slice(), Slice(), Slice(L_old - kept_len, L_old)}));
            }
            buffer.index({Slice(K, None), Slice(), Slice(L - p, L)}).copy_(fresh.index_select(0, src));
            (keys ? cache.k[layer] : cache.v[layer]) = buffer;
        }
    }
    cache.length = L;
    auto key_mask = torch::zeros({K + R, L}, mask.options());
    if (K > 0) key_mask.index({Slice(0, K), Slice(L - kept_len, L)}).copy_(a.key_mask.index({Slice(), Slice(L_old - kept_len, L_old)}));
    key_mask.index({Slice(K, None), Slice(L - p, L)}).copy_(mask.index_select(0, src));
    a.key_mask = key_mask;
    a.cache = std::move(cache);

    // 3. The new rows' per-row state after the running rows'.
    const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(job.device);
    const auto new_rows = torch::arange(first, first + count, long_opts);
    const auto new_pos = mask.to(torch::kLong).sum(1, /*keepdim=*/true).index_select(0, src);  // (R, 1)
    const auto joined = [K](const torch::Tensor& running, const torch::Tensor& added) {
        return K > 0 ? torch::cat({running, added}, 0) : added;
    };
    a.row_index = joined(a.row_index, new_rows);
    a.seeds = joined(a.seeds, job.seeds.index_select(0, new_rows));
    a.steps = joined(a.steps, torch::zeros({R}, long_opts));
    a.next_pos = joined(a.next_pos, new_pos);
    a.finished = joined(a.finished, torch::zeros({R}, mask.options()));
    a.logits = joined(a.logits, new_logits.index_select(0, src));
    for (int64_t r = first; r < first + count; ++r) {
        a.rows.push_back(r);
        a.steps_host.push_back(0);
    }
    if (job.engine.time_prefill) {
        if (job.device.is_cuda()) torch::cuda::synchronize();
        job.counts.prefill_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
}

// How many of the rows first… to admit into `free_slots`: as many as fit, less a group cut at the
// end (a run of identical prompts, whose rest would be prefilled again by the next admission),
// unless that group is all there would be.
int64_t admission_size(const std::vector<std::vector<int32_t>>& prompts, int64_t first, int64_t free_slots, bool share) {
    const auto B = static_cast<int64_t>(prompts.size());
    const int64_t end = std::min(B, first + free_slots);
    if (!share || end == B) return end - first;
    int64_t start = end;  // where the run of prompts[end] begins
    while (start > first && prompts[static_cast<size_t>(start - 1)] == prompts[static_cast<size_t>(end)]) --start;
    return start > first ? start - first : end - first;
}

}  // namespace

Generation generate_rollouts(GptImpl& model, const std::vector<std::vector<int32_t>>& prompts_in, const SamplingOptions& opts,
                             int64_t pad_id, const std::vector<uint64_t>& row_seeds, const RolloutEngineOptions& engine,
                             RolloutCounts* counts_out) {
    const auto prompts = fit_prompts(prompts_in, row_seeds.size(), opts, model.config().block_size);
    torch::NoGradGuard no_grad;
    EvalModeGuard eval_mode(model);
    const torch::Device device = model.transformer->wte->weight.device();
    AutocastGuard autocast(opts.bf16, device.type());
    const auto B = static_cast<int64_t>(prompts.size());
    const int64_t N = opts.max_new_tokens;
    const int64_t max_active = engine.max_active > 0 ? std::min(engine.max_active, B) : B;
    const int64_t check_every = engine.check_every > 0 ? engine.check_every : (device.is_cuda() ? 8 : 1);
    // Waiting prompts join once this many slots are free: one prefill per few rows, not per row.
    const int64_t admit_at = std::max<int64_t>(1, max_active / 4);
    const bool greedy = opts.temperature == 0.0;
    RolloutCounts counts;
    std::vector<int64_t> seed_bits(row_seeds.begin(), row_seeds.end());
    const Job job{model, prompts, opts, engine, pad_id, torch::tensor(seed_bits, torch::kLong).to(device), device, counts};

    // Every row's response, with one column more than N: a row that stopped but is still in the
    // batch (between checks) writes its masked steps there.
    const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);
    auto response = torch::full({B, N + 1}, pad_id, long_opts);
    auto logprobs = torch::zeros({B, N + 1}, long_opts.dtype(torch::kFloat32));
    auto response_mask = torch::zeros({B, N + 1}, long_opts.dtype(torch::kBool));
    const auto stop_ids = torch::tensor(opts.stop_ids.empty() ? std::vector<int64_t>{-1} : opts.stop_ids, torch::kLong).to(device);
    auto bad = torch::zeros({}, long_opts.dtype(torch::kBool));  // some row had nothing to sample from

    ActiveRows a{{}, {}, {}, {}, {}, {}, {}, {}, {}, model.make_cache(0, 0)};
    int64_t next_row = admission_size(prompts, 0, max_active, engine.share_prefixes);
    admit(job, a, 0, next_row);
    for (int64_t step = 1; a.size() > 0; ++step) {
        // 1. One token for every slot, each from its row's stream at the row's own step.
        const int64_t A = a.size();
        auto row_bad = torch::zeros({A}, a.finished.options());
        auto u = greedy ? torch::Tensor() : stream_uniforms(a.seeds, a.steps);
        auto [token, logprob] = sample_tokens(a.logits.to(torch::kFloat32), opts, u, row_bad);
        if (!greedy) bad = bad.logical_or(row_bad.any());
        token = token.masked_fill(a.finished, pad_id);
        const auto column = a.steps.masked_fill(a.finished, N);
        response.index_put_({a.row_index, column}, token);
        logprobs.index_put_({a.row_index, column}, logprob.masked_fill(a.finished, 0.0f));
        response_mask.index_put_({a.row_index, column}, a.finished.logical_not());
        a.key_mask = torch::cat({a.key_mask, a.finished.logical_not().unsqueeze(1)}, 1);  // (A, L + 1)
        a.finished = a.finished.logical_or(torch::isin(token, stop_ids)).logical_or(a.steps + 1 >= N);
        a.steps = a.steps + 1;
        for (auto& s : a.steps_host) ++s;
        counts.decode_slots += A;

        // 2. Every check_every tokens (a host sync), the rows that stopped leave: once they are an
        // eighth of the batch (compacting copies the whole cache, a dozen row-steps' worth of
        // work per row on a CPU), when waiting rows can use their slots, or when all stopped.
        const bool all_at_limit = *std::min_element(a.steps_host.begin(), a.steps_host.end()) >= N;
        if (step % check_every == 0 || all_at_limit) {
            const auto done = a.finished.to(torch::kCPU);
            const bool* is_done = done.data_ptr<bool>();
            std::vector<int64_t> keep;
            for (int64_t s = 0; s < A; ++s) if (!is_done[s]) keep.push_back(s);
            const int64_t stopped = A - static_cast<int64_t>(keep.size());
            const bool refill = next_row < B && max_active - static_cast<int64_t>(keep.size()) >= admit_at;
            if (stopped > 0 && (stopped >= engine.compact_share * static_cast<double>(A) || refill || keep.empty())) {
                keep_slots(a, keep, token);
            }
        }
        // 3. The sampled tokens through the model: the next logits of every running row.
        if (a.size() > 0) {
            AttentionContext ctx{a.next_pos, a.key_mask, &a.cache};
            a.logits = model.logits(model.forward(token.view({a.size(), 1}), ctx).index({Slice(), -1}));  // (A, V)
            a.next_pos = a.next_pos + 1;
            ++counts.decode_steps;
        }
        // 4. Waiting prompts take the freed slots.
        const int64_t free_slots = max_active - a.size();
        if (next_row < B && (free_slots >= admit_at || a.size() == 0)) {
            const int64_t count = admission_size(prompts, next_row, free_slots, engine.share_prefixes);
            admit(job, a, next_row, count);
            next_row += count;
        }
    }

    Generation out;
    out.nonfinite = !greedy && bad.item<bool>();
    if (out.nonfinite && opts.throw_on_nonfinite) throw nonfinite_logits_error();
    const int64_t produced = response_mask.sum(1).max().item<int64_t>();  // the longest row's tokens
    auto [prompt_ids, prompt_mask] = left_pad(prompts, pad_id, device);  // (B, P)
    out.prompt_len = prompt_ids.size(1);
    out.response = response.index({Slice(), Slice(0, produced)});
    out.response_mask = response_mask.index({Slice(), Slice(0, produced)});
    out.logprobs = logprobs.index({Slice(), Slice(0, produced)});
    out.tokens = torch::cat({prompt_ids, out.response}, 1);
    out.attention_mask = torch::cat({prompt_mask, out.response_mask}, 1);
    out.decode_slots = counts.decode_slots;
    if (counts_out) *counts_out = counts;
    return out;
}

Generation generation_rows(const Generation& g, int64_t r0, int64_t r1) {
    const auto mask = g.attention_mask.index({Slice(r0, r1)});
    const auto response_mask = g.response_mask.index({Slice(r0, r1)});
    // The rows' longest prompt and longest response, in one host copy.
    const auto lengths = torch::stack({mask.index({Slice(), Slice(0, g.prompt_len)}).sum(1).max(),
                                       response_mask.sum(1).max()}).cpu();
    const int64_t prompt = lengths[0].item<int64_t>(), n = std::max<int64_t>(lengths[1].item<int64_t>(), 1);
    const int64_t lead = g.prompt_len - prompt;  // columns of padding every row has
    Generation out;
    out.prompt_len = prompt;
    out.tokens = g.tokens.index({Slice(r0, r1), Slice(lead, g.prompt_len + n)});
    out.attention_mask = mask.index({Slice(), Slice(lead, g.prompt_len + n)});
    out.response = g.response.index({Slice(r0, r1), Slice(0, n)});
    out.response_mask = response_mask.index({Slice(), Slice(0, n)});
    out.logprobs = g.logprobs.index({Slice(r0, r1), Slice(0, n)});
    out.nonfinite = g.nonfinite;
    out.decode_slots = 0;  // the work was the whole batch's: read g.decode_slots
    return out;
}

}  // namespace rlhf
