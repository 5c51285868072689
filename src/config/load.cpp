#include "rlhf/config/load.h"

#include <spdlog/fmt/fmt.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <variant>

#include "rlhf/config/presets.h"
#include "rlhf/config/validate.h"
#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"

namespace rlhf {

namespace {

// A key whose value is one of an enum's words (config/enums.h): the words, and the field read and
// written by index, so one row type serves every enum.
struct EnumRef {
    std::vector<std::string> names;   // the enum's words, in its order
    std::function<size_t()> get;      // the field's index in names
    std::function<void(size_t)> set;
};

template <class E> EnumRef enum_ref(E* field) {
    EnumRef ref;
    for (const auto word : EnumNames<E>::names) ref.names.emplace_back(word);
    ref.get = [field] { return static_cast<size_t>(*field); };
    ref.set = [field](size_t index) { *field = static_cast<E>(index); };
    return ref;
}

using FieldRef = std::variant<int*, int64_t*, uint64_t*, double*, bool*, std::string*, std::vector<std::string>*, EnumRef>;

// One YAML key: where it lives in RunConfig, what it means, and its allowed values.
struct Field {
    std::string key;
    FieldRef ref;
    std::string doc;
    double min = -std::numeric_limits<double>::infinity();
    double max = std::numeric_limits<double>::infinity();
    std::vector<std::string> choices;  // for strings; empty = any
};

constexpr double kInf = std::numeric_limits<double>::infinity();

// The single table of every key. Adding a field to config.h means adding a row here (the
// round-trip test in tests/config fails otherwise).
std::vector<Field> fields_of(RunConfig& c) {
    return {
        {"stage", enum_ref(&c.stage), "which stage this config runs"},
        {"out_dir", &c.out_dir, "run directory: config.yaml, train.log, metrics.jsonl, checkpoints/"},
        {"init_from", &c.init_from, "sft, reward, ppo, dpo: checkpoint or run directory to start from (its model, weights and tokenizer); "
         "classify: the same, or empty to train from scratch (then tokenizer.path and the model keys)"},

        {"runtime.threads", &c.runtime.threads, "intra-op CPU threads; 0 = all cores", 0, 4096},
        {"runtime.seed", &c.runtime.seed, "seeds weights, dropout and the data sampler"},
        {"runtime.device", &c.runtime.device, "cpu | cuda | cuda:N | auto"},
        {"runtime.dtype", &c.runtime.dtype, "compute precision of matmuls (weights and optimizer stay fp32)",
         -kInf, kInf, {"float32", "bfloat16"}},
        {"runtime.log_level", &c.runtime.log_level, "console and file log level", -kInf, kInf,
         {"debug", "info", "warn", "error"}},
        {"runtime.dist_timeout", &c.runtime.dist_timeout,
         "distributed runs: seconds a rank waits for the others before it stops with an error (see docs/distributed.md)", 1, 86400},
        {"runtime.dist_bucket_mb", &c.runtime.dist_bucket_mb,
         "distributed runs: MiB of gradients per all-reduce, started while backward goes on (PyTorch DDP's bucket_cap_mb)",
         0.001, 4096},
        {"runtime.adapt_threads", &c.runtime.adapt_threads,
         "while other processes keep the CPUs busy, train on one intra-op thread (spinning threads would fight "
         "them); false keeps runtime.threads, for bit-identical results under load"},
        {"runtime.deterministic", &c.runtime.deterministic,
         "one seed, one result, also under load: runtime.threads throughout (no adapt_threads) and LibTorch's "
         "deterministic kernels where it has them; beside a busy process a run is then several times slower "
         "(docs/reliability.md)"},

        {"model.preset", &c.model.preset, "a named size and its family's layout (GPT-2, or Llama/Qwen at random init); "
         "explicit model keys win", -kInf, kInf, preset_names()},
        {"model.arch", enum_ref(&c.model.arch), "gpt2 = pre-LN + final LayerNorm; gpt1 = post-LN; llama = pre-RMSNorm, rotary "
         "positions, SwiGLU MLP (Llama, Qwen2/3, SmolLM2)"},
        {"model.n_layer", &c.model.n_layer, "transformer blocks", 1, 1024},
        {"model.n_head", &c.model.n_head, "attention (query) heads per block", 1, 1024},
        {"model.n_embd", &c.model.n_embd, "residual stream width (divisible by n_head unless head_dim is set)", 1, 65536},
        {"model.block_size", &c.model.block_size, "context window in tokens (memory follows what a run uses)", 1, 1 << 20},
        {"model.vocab_size", &c.model.vocab_size, "0 = the tokenizer's size; larger pads the embedding", 0, 1 << 24},
        {"model.bias", &c.model.bias, "gpt2, gpt1: biases in Linear and LayerNorm layers"},
        {"model.activation", enum_ref(&c.model.activation), "gpt2, gpt1: MLP activation, gelu (exact, erf) or gelu_tanh (GPT-2's "
         "gelu_new; what imported GPT-2 weights need); llama: silu (the SwiGLU gate)"},
        {"model.dropout", &c.model.dropout, "dropout on embeddings, attention and residual branches", 0, 0.999},
        {"model.n_kv_head", &c.model.n_kv_head, "llama: key/value heads, dividing n_head (grouped-query attention); 0 = n_head",
         0, 1024},
        {"model.head_dim", &c.model.head_dim, "llama: width of one attention head; 0 = n_embd / n_head", 0, 4096},
        {"model.intermediate_size", &c.model.intermediate_size, "llama: SwiGLU hidden width; 0 = 4 * n_embd", 0, 1 << 20},
        {"model.norm_eps", &c.model.norm_eps, "llama: RMSNorm epsilon", 1e-12, 1e-2},
        {"model.rope_theta", &c.model.rope_theta, "llama: rotary position base", 1, 1e9},
        {"model.rope_scaling", enum_ref(&c.model.rope_scaling), "llama: rotary frequency scaling, none or llama3 (Llama-3.1/3.2)"},
        {"model.rope_factor", &c.model.rope_factor, "llama3 rope scaling: factor", 1, 1e6},
        {"model.rope_low_freq_factor", &c.model.rope_low_freq_factor, "llama3 rope scaling: low_freq_factor", 1e-6, 1e6},
        {"model.rope_high_freq_factor", &c.model.rope_high_freq_factor, "llama3 rope scaling: high_freq_factor", 1e-6, 1e6},
        {"model.rope_original_context", &c.model.rope_original_context,
         "llama3 rope scaling: original_max_position_embeddings", 1, 1 << 24},
        {"model.qkv_bias", &c.model.qkv_bias, "llama: biases on the q, k, v projections (Qwen2)"},
        {"model.qk_norm", &c.model.qk_norm, "llama: RMSNorm on each head's queries and keys (Qwen3)"},
        {"model.tie_embeddings", &c.model.tie_embeddings, "llama: the LM head is the token embedding; false = an lm_head "
         "of its own"},
        {"model.lora.rank", &c.model.lora.rank, "LoRA: rank r of the adapters; 0 = off (every weight trains)", 0, 4096},
        {"model.lora.alpha", &c.model.lora.alpha, "LoRA: the adapters' update is scaled by alpha / rank", 1e-6, 1e6},
        {"model.lora.dropout", &c.model.lora.dropout, "LoRA: dropout on each adapter's input while training", 0, 0.99},
        {"model.lora.targets", &c.model.lora.targets, "LoRA: the projections with adapters: q, k, v, o (attention), gate, up, "
         "down (llama's MLP), fc, proj (gpt2's MLP)"},

        {"tokenizer.path", &c.tokenizer.path, "tokenizer directory; empty = train one into <out_dir>/tokenizer"},
        {"tokenizer.model_type", &c.tokenizer.model_type, "when training: bpe | unigram | char", -kInf, kInf,
         {"bpe", "unigram", "char"}},
        {"tokenizer.vocab_size", &c.tokenizer.vocab_size, "when training: target size (0 = all characters, char only)",
         0, 1 << 20},

        {"chat.template", &c.chat.template_, "the chat format of sft, reward, dpo and ppo (docs/chat-format.md): auto = "
         "the tokenizer's own (a Hugging Face model's ChatML or Llama-3 template; ours when it has none) | rlhf (ours) | "
         "chatml | llama3", -kInf, kInf, {"auto", "rlhf", "chatml", "llama3"}},

        {"data.text", &c.data.text, "raw text files, tokenized into <out_dir>/data on the first run"},
        {"data.shards", &c.data.shards, "or: a token-shard directory made by `rlhf data prepare`"},
        {"data.val_fraction", &c.data.val_fraction, "held out for validation: pretrain, the tail of the token stream; sft, reward, ppo, examples "
         "(prompts) drawn by runtime.seed", 0, 0.5},
        {"data.sampler", enum_ref(&c.data.sampler), "epoch: shuffled non-overlapping windows, every token once per epoch; "
         "random: windows drawn with replacement (nanoGPT)"},
        {"data.files", &c.data.files, "sft, reward, dpo: example files; ppo: prompt files (JSONL, JSONL.gz, or a JSON array as Alpaca ships); "
         "classify: labelled task files (GLUE TSV, Story Cloze CSV, JSONL)"},
        {"data.val_files", &c.data.val_files, "sft, reward, dpo, classify: held-out example files; empty = data.val_fraction of data.files"},
        {"data.format", enum_ref(&c.data.format), "record layout; auto = from each file's first record. sft: prompt_response | gsm8k | "
         "alpaca | messages; reward: ranked | pairwise | hh | pandalm; classify: sst2 | rte | stsb | story_cloze | jsonl"},
        {"data.fields.prompt", &c.data.fields.prompt, "sft, reward, ppo: source key of the prompt (\"\" = the format's own)"},
        {"data.fields.response", &c.data.fields.response, "sft: source key of the response"},
        {"data.fields.messages", &c.data.fields.messages, "sft: source key of the message list"},
        {"data.fields.answer", &c.data.fields.answer, "ppo with a checker reward: source key of the gold answer (\"\" = answer)"},
        {"data.fields.text", &c.data.fields.text, "classify, JSONL: key of the text / premise / first sentence / context "
         "(\"\" = text, premise, text_a or context by task.type)"},
        {"data.fields.text_b", &c.data.fields.text_b, "classify, JSONL: key of the hypothesis / second sentence (\"\" = hypothesis or text_b)"},
        {"data.fields.choices", &c.data.fields.choices, "classify, JSONL, multiple_choice: key of the answer list (\"\" = choices)"},
        {"data.fields.label", &c.data.fields.label, "classify, JSONL: key of the class, right choice or score (\"\" = label)"},
        {"data.on_error", enum_ref(&c.data.on_error), "a bad record: error (stop, naming file:line) | skip (count it)"},
        {"data.packing", &c.data.packing, "sft: pack several examples per window (block-diagonal attention)"},
        {"data.too_long", enum_ref(&c.data.too_long), "sft: an example longer than the window: truncate | skip"},
        {"data.min_prompt_fraction", &c.data.min_prompt_fraction,
         "sft: a truncated prompt keeps at least this share of the window", 0, 1},

        {"optim.lr", &c.optim.lr, "peak learning rate (end of warmup)", 0, 10},
        {"optim.min_lr", &c.optim.min_lr, "learning rate at the end of the cosine decay", 0, 10},
        {"optim.lr_warmup_steps", &c.optim.lr_warmup_steps, "linear warmup steps", 0, kInf},
        {"optim.lr_decay_steps", &c.optim.lr_decay_steps, "step where the cosine reaches min_lr; 0 = train.max_steps",
         0, kInf},
        {"optim.weight_decay", &c.optim.weight_decay, "AdamW decoupled weight decay on >=2-D tensors", 0, 10},
        {"optim.beta1", &c.optim.beta1, "AdamW beta1", 0, 0.999999},
        {"optim.beta2", &c.optim.beta2, "AdamW beta2", 0, 0.999999999},
        {"optim.eps", &c.optim.eps, "AdamW epsilon", 0, 1},
        {"optim.eps_style", enum_ref(&c.optim.eps_style), "where epsilon goes: torch (added to sqrt(v_hat)) | tf (added to sqrt(v), "
         "larger early in training; OpenAI's RLHF code)"},
        {"optim.grad_clip", &c.optim.grad_clip, "max global gradient norm; 0 = no clipping", 0, kInf},

        {"train.max_steps", &c.train.max_steps, "optimizer steps", 1, kInf},
        {"train.batch_size", &c.train.batch_size, "sequences per micro-batch", 1, 1 << 20},
        {"train.grad_accum_steps", &c.train.grad_accum_steps, "micro-batches per optimizer step", 1, 1 << 20},
        {"train.eval_every", &c.train.eval_every, "steps between evaluations; 0 = only at the end", 0, kInf},
        {"train.eval_batches", &c.train.eval_batches, "batches per split and evaluation", 1, 1 << 20},
        {"train.log_every", &c.train.log_every, "steps between console log lines", 1, kInf},
        {"train.eval_prompts", &c.train.eval_prompts, "sft, ppo: held-out prompts answered per eval (sft: EOS rate, "
         "greedy and sampled; ppo: greedy score and EOS rate)",
         0, 1 << 20},
        {"train.log_samples", &c.train.log_samples, "sft, ppo: answers printed in the log per eval", 0, 1 << 20},
        {"train.activation_checkpointing", &c.train.activation_checkpointing, "none | blocks (each block keeps only its "
         "input and runs again in the backward: less activation memory, one more forward) | every_N (segments of N "
         "blocks)"},

        {"reward.margin", &c.reward.margin, "reward: loss -log sigmoid(r_better - r_worse - margin); 0 = InstructGPT", -kInf, kInf},
        {"reward.normalize", enum_ref(&c.reward.normalize), "reward: after training, shift (bias) or shift and scale (gain_bias) "
         "rewards so the reference set has mean 0 (std 1); none"},
        {"reward.reference_files", &c.reward.reference_files, "reward: demonstrations to normalise on (sft formats); "
         "empty = the best response of each training group"},
        {"reward.reference_count", &c.reward.reference_count, "reward: at most this many reference responses", 1, 1 << 24},
        {"reward.micro_batch_tokens", &c.reward.micro_batch_tokens, "reward: padded tokens (completions x longest) per "
         "forward and backward, which bounds memory; a step's groups are split into runs this size (a group never is); "
         "0 = the whole micro-batch at once", 0, kInf},

        {"ppo.reward_model", &c.ppo.reward_model, "ppo: reward-model checkpoint (stage: reward) that scores responses"},
        {"ppo.toy_reward", &c.ppo.toy_reward, "ppo: instead of a reward model, count:TEXT scores how often TEXT's token "
         "appears in the response"},
        {"ppo.critic_from", enum_ref(&c.ppo.critic_from), "ppo: critic initialised from the reward model (InstructGPT) or the "
         "policy trunk with a fresh head"},
        {"ppo.rollout_batch", &c.ppo.rollout_batch, "ppo: prompts (episodes) per iteration", 1, 1 << 20},
        {"ppo.rollout_chunk", &c.ppo.rollout_chunk, "ppo: sequences generated and scored together (bounds the "
         "rollout's memory, not what is sampled: every row has its own random stream)", 1, 1 << 20},
        {"ppo.minibatch", &c.ppo.minibatch, "ppo: sequences per optimizer step", 1, 1 << 20},
        {"ppo.epochs", &c.ppo.epochs, "ppo: passes over each rollout batch", 1, 1000},
        {"ppo.max_new_tokens", &c.ppo.max_new_tokens, "ppo: response length cap", 1, 1 << 20},
        {"ppo.temperature", &c.ppo.temperature, "ppo: rollout temperature (log-probs use logits / T)", 1e-3, 100},
        {"ppo.reference_temperature", &c.ppo.reference_temperature, "ppo: the reference's log-probs in the KL "
         "penalty use logits / this (below ppo.temperature: the policy is held near a sharper SFT model); 0 = ppo.temperature",
         0, 100},
        {"ppo.kl_coef", &c.ppo.kl_coef, "ppo: beta of the per-token KL penalty (initial beta when adaptive)", 0, kInf},
        {"ppo.kl_target", &c.ppo.kl_target, "ppo: > 0 adapts beta toward this KL per sequence (Ziegler et al.)", 0, kInf},
        {"ppo.kl_horizon", &c.ppo.kl_horizon, "ppo: episodes over which beta adapts", 1, kInf},
        {"ppo.kl_estimator", enum_ref(&c.ppo.kl_estimator), "ppo: per-token KL estimate k1 | k2 | k3"},
        {"ppo.clip", &c.ppo.clip, "ppo: policy ratio clip epsilon", 0, 10},
        {"ppo.value_clip", &c.ppo.value_clip, "ppo: value clip epsilon", 0, kInf},
        {"ppo.vf_coef", &c.ppo.vf_coef, "ppo: value-loss weight; the critic has its own AdamW, which undoes a "
         "constant scale, so this matters only through optim.grad_clip and eps", 0, kInf},
        {"ppo.gamma", &c.ppo.gamma, "ppo: GAE discount", 0, 1},
        {"ppo.lambda", &c.ppo.lambda, "ppo: GAE lambda", 0, 1},
        {"ppo.missing_eos_penalty", &c.ppo.missing_eos_penalty, "ppo: a response that never ends scores missing_eos_score"},
        {"ppo.missing_eos_score", &c.ppo.missing_eos_score, "ppo: the score of a response without EOS", -kInf, kInf},
        {"ppo.score_clip", &c.ppo.score_clip, "ppo: clip scores to +-this; 0 = off", 0, kInf},
        {"ppo.whiten_rewards", &c.ppo.whiten_rewards, "ppo: scale per-token rewards per batch (mean kept)"},
        {"ppo.whiten_advantages", &c.ppo.whiten_advantages, "ppo: scale each minibatch's advantages to std 1 (false: only remove their mean)"},
        {"ppo.ptx_coef", &c.ppo.ptx_coef, "ppo: PPO-ptx pre-training loss weight (InstructGPT 27.8); 0 = off", 0, kInf},
        {"ppo.ptx_shards", &c.ppo.ptx_shards, "ppo: token shards for PPO-ptx (rlhf data prepare)"},
        {"ppo.ptx_batch", &c.ppo.ptx_batch, "ppo: pre-training windows per optimizer step", 1, 1 << 20},
        {"ppo.ema_decay", &c.ppo.ema_decay, "ppo: EMA of policy weights (InstructGPT 0.992); 0 = off", 0, 0.999999},
        {"ppo.critic_lr", &c.ppo.critic_lr, "ppo: critic learning rate; 0 = optim.lr", 0, 10},
        {"ppo.frozen_dtype", &c.ppo.frozen_dtype, "ppo: weights of the reference and reward models; auto = bfloat16 when "
         "runtime.dtype is (half their memory), else float32", -kInf, kInf, {"auto", "float32", "bfloat16"}},
        {"ppo.check_invariants", enum_ref(&c.ppo.check_invariants), "ppo: every iteration, sampling log-probs = the training "
         "forward's and the first minibatch's ratio = 1; a gap stops the run (error), is logged (warn), or is not checked "
         "(off; also when model.dropout > 0)"},
        {"ppo.advantage", enum_ref(&c.ppo.advantage), "ppo: gae (a critic, GAE) | grpo (the group's mean and std) | rloo (the mean "
         "of the group's other samples); grpo and rloo allocate no critic"},
        {"ppo.group_size", &c.ppo.group_size, "ppo: samples per prompt; ppo.rollout_batch prompts x this sequences per "
         "iteration (grpo and rloo: >= 2)", 1, 1 << 16},
        {"ppo.scale_by_std", &c.ppo.scale_by_std, "ppo, grpo: divide by the group's std (false: Dr.GRPO)"},
        {"ppo.loss_aggregation", enum_ref(&c.ppo.loss_aggregation), "ppo: the policy loss as the mean over all tokens, the mean "
         "of each sequence's token mean, or token sums / max_new_tokens (Dr.GRPO)"},
        {"ppo.clip_low", &c.ppo.clip_low, "ppo: the ratio is clipped below at 1 - this; 0 = ppo.clip", 0, 1},
        {"ppo.clip_high", &c.ppo.clip_high, "ppo: the ratio is clipped above at 1 + this (DAPO's clip-higher: 0.28); "
         "0 = ppo.clip", 0, 10},
        {"ppo.kl_penalty", enum_ref(&c.ppo.kl_penalty), "ppo: reward: -beta x KL in each token's reward | loss: beta x the k3 "
         "KL added to the policy loss (GRPO); kl_coef 0 loads no reference model"},
        {"ppo.reward", enum_ref(&c.ppo.reward), "ppo: model (ppo.reward_model or ppo.toy_reward) | checker:ages | checker:gsm8k "
         "(1 when the response's last number is the prompt's answer; with ppo.reward_model set too, weighted together)"},
        {"ppo.checker_weight", &c.ppo.checker_weight, "ppo: weight of the checker's 0/1 when a reward model scores too",
         -kInf, kInf},
        {"ppo.reward_model_weight", &c.ppo.reward_model_weight, "ppo: weight of the reward model's score when a "
         "checker scores too", -kInf, kInf},
        {"ppo.format_reward", &c.ppo.format_reward, "ppo, checker: added when the response ends and has the answer's "
         "form (a number; gsm8k: '#### N')", -kInf, kInf},

        {"ppo.rollout_correction", enum_ref(&c.ppo.rollout_correction), "ppo: the sampler/trainer log-prob gap (bf16 "
         "or GPU rollouts): none | tis (each token's policy loss times w = pi_trainer / pi_sampler, truncated at the cap; "
         "truncated importance sampling) | mask (the tokens whose w is outside [1/cap, cap] left out)"},
        {"ppo.rollout_correction_cap", &c.ppo.rollout_correction_cap, "ppo: the cap of ppo.rollout_correction (>= 1 when it is on)", 0, 1e6},
        {"ppo.rollout_engine", enum_ref(&c.ppo.rollout_engine), "ppo: continuous (a group's prompt prefilled once, "
         "stopped rows leave the batch, waiting prompts take their slots; at most ppo.rollout_chunk rows decode at once) | "
         "static (generate() on each chunk: the reference it is tested against)"},
        {"ppo.alarm_window", &c.ppo.alarm_window, "ppo: iterations the silent-failure alarms look back over "
         "(a warning and an alarm_* metric; 0 = off)", 0, 1e6},
        {"ppo.alarm_truncated_share", &c.ppo.alarm_truncated_share, "ppo: alarm when more than this share of the "
         "window's responses reached max_new_tokens without a stop token", 0, 1},
        {"ppo.alarm_reward_std", &c.ppo.alarm_reward_std, "ppo: alarm when the scores' standard deviation is at most "
         "this in every iteration of the window (every answer scored alike)", 0, 1e6},
        {"ppo.alarm_uniform_groups", &c.ppo.alarm_uniform_groups, "ppo, grpo/rloo: alarm when more than this share of "
         "the window's groups gave all their answers one score (advantage 0)", 0, 1},

        {"dpo.beta", &c.dpo.beta, "dpo: strength of the implicit KL to the reference (DPO's beta)", 1e-6, 1e6},
        {"dpo.loss", enum_ref(&c.dpo.loss), "dpo: sigmoid (DPO) | ipo (IPO's squared loss)"},
        {"dpo.label_smoothing", &c.dpo.label_smoothing, "dpo, sigmoid: share of pairs assumed flipped (conservative "
         "DPO)", 0, 0.5},
        {"dpo.reference", &c.dpo.reference, "dpo: the frozen reference checkpoint; \"\" = init_from"},

        {"task.type", enum_ref(&c.task.type), "classify: classification | entailment | similarity | multiple_choice (GPT-1's input "
         "transformations, docs/gpt1-tasks.md)"},
        {"task.num_classes", &c.task.num_classes, "classify: classes; similarity: 1 = regression on the score; "
         "multiple_choice: unused (one score per choice)", 1, 1 << 16},
        {"task.labels", &c.task.labels, "classify: class names in index order; [] = the format's own (RTE: entailment, "
         "not_entailment) or integer labels"},
        {"task.score_min", &c.task.score_min, "classify, similarity regression: lowest valid score", -kInf, kInf},
        {"task.score_max", &c.task.score_max, "classify, similarity regression: highest valid score", -kInf, kInf},
        {"task.lm_coef", &c.task.lm_coef, "classify: weight of the auxiliary LM loss on the input tokens (GPT-1's "
         "lambda 0.5); 0 = off", 0, 1e6},
        {"task.head_dropout", &c.task.head_dropout, "classify: dropout on the head's input (GPT-1: 0.1)", 0, 0.999},

        {"checkpoint.every", &c.checkpoint.every, "steps between checkpoints; 0 = only at the end", 0, kInf},
        {"checkpoint.keep_last", &c.checkpoint.keep_last, "newest checkpoints kept; 0 = all", 0, 1 << 20},
        {"checkpoint.export_hf", &c.checkpoint.export_hf, "also write <step>/hf, loadable by transformers' "
         "from_pretrained (pre-LN models; see rlhf convert --to-hf)"},
    };
}

std::string describe_mark(const std::string& source, const YAML::Mark& mark) {
    if (mark.is_null()) return source;
    return source + ":" + std::to_string(mark.line + 1);
}

// Levenshtein distance, for "did you mean".
size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t cur = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
            prev = cur;
        }
    }
    return row[b.size()];
}

std::string suggest(const std::string& key, const std::vector<Field>& fields) {
    std::string best;
    size_t best_d = 4;  // only close matches are worth suggesting
    // Section names first: `trian:` is the train section misspelt, not model.bias misplaced. Only
    // a close one (2 edits), and only when what it suggests exists (`trian.max_stpes` does not).
    auto exists = [&](const std::string& k) {
        for (const auto& f : fields) {
            if (f.key == k || f.key.rfind(k + ".", 0) == 0) return true;
        }
        return false;
    };
    const std::string key_section = key.substr(0, key.find('.'));
    for (const auto& f : fields) {
        const auto dot = f.key.find('.');
        if (dot == std::string::npos) continue;
        const std::string section = f.key.substr(0, dot);
        const std::string candidate = section + key.substr(key_section.size());
        if (const size_t d = edit_distance(key_section, section); d <= 2 && d > 0 && d < best_d && exists(candidate)) {
            best_d = d;
            best = candidate;
        }
    }
    for (const auto& f : fields) {
        // Compare with the full key and with its last component (a misplaced key).
        std::string last = f.key.substr(f.key.rfind('.') + 1);
        std::string key_last = key.substr(key.rfind('.') + 1);
        size_t d = std::min(edit_distance(key, f.key), edit_distance(key_last, last) + (key == key_last ? 0 : 1));
        if (d < best_d) {
            best_d = d;
            best = f.key;
        }
    }
    return best.empty() ? "see docs/config.md for the list of keys" : "did you mean '" + best + "'?";
}

std::string scalar_text(const YAML::Node& node) {
    if (node.IsScalar()) return node.Scalar();
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a mapping";
    return "nothing";
}

// Assigns a YAML node to a field; returns "" or a message describing the type problem.
std::string assign(const Field& field, const YAML::Node& node) {
    if (node.IsNull()) return "has no value";
    if (const auto* e = std::get_if<EnumRef>(&field.ref)) {
        if (!node.IsScalar()) return "expected one of: " + fmt::format("{}", fmt::join(e->names, ", ")) + ", got " + scalar_text(node);
        const auto at = std::find(e->names.begin(), e->names.end(), node.Scalar());
        if (at == e->names.end()) return fmt::format("'{}' is not one of: {}", node.Scalar(), fmt::join(e->names, ", "));
        e->set(static_cast<size_t>(at - e->names.begin()));
        return "";
    }
    try {
        return std::visit(
            [&](const auto& ref) -> std::string {
                using T = std::remove_pointer_t<std::decay_t<decltype(ref)>>;
                if constexpr (std::is_same_v<T, EnumRef>) {
                    return "";  // handled above
                } else {
                T* target = ref;
                if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                    if (node.IsScalar()) {
                        *target = {node.Scalar()};
                    } else if (node.IsSequence()) {
                        target->clear();
                        for (const auto& item : node) {
                            if (!item.IsScalar()) return "expected a list of strings";
                            target->push_back(item.Scalar());
                        }
                    } else {
                        return "expected a string or a list of strings, got " + scalar_text(node);
                    }
                    return "";
                } else {
                    if (!node.IsScalar()) return "expected a single value, got " + scalar_text(node);
                    if constexpr (std::is_same_v<T, bool>) {
                        *target = node.as<bool>();
                    } else if constexpr (std::is_same_v<T, std::string>) {
                        *target = node.Scalar();
                    } else if constexpr (std::is_same_v<T, double>) {
                        double v = node.as<double>();
                        if (!std::isfinite(v)) return "must be a finite number, got '" + node.Scalar() + "'";
                        *target = v;
                    } else {
                        *target = node.as<T>();
                    }
                    return "";
                }
                }
            },
            field.ref);
    } catch (const YAML::BadConversion&) {
        const char* kind = std::visit(
            [](const auto& ref) -> const char* {
                using T = std::remove_pointer_t<std::decay_t<decltype(ref)>>;
                if constexpr (std::is_same_v<T, bool>) return "true or false";
                else if constexpr (std::is_same_v<T, double>) return "a number";
                else if constexpr (std::is_same_v<T, std::string>) return "a string";
                else return "an integer";
            },
            field.ref);
        return std::string("expected ") + kind + ", got '" + scalar_text(node) + "'";
    }
}

std::string value_text(const FieldRef& ref) {
    return std::visit(
        [](const auto& r) -> std::string {
            using T = std::remove_pointer_t<std::decay_t<decltype(r)>>;
            if constexpr (std::is_same_v<T, EnumRef>) return r.names.at(r.get());
            else if constexpr (std::is_same_v<T, std::vector<std::string>>) return fmt::format("[{}]", fmt::join(*r, ", "));
            else if constexpr (std::is_same_v<T, bool>) return *r ? "true" : "false";
            else if constexpr (std::is_same_v<T, std::string>) return *r;
            else return fmt::format("{}", *r);
        },
        ref);
}

double numeric_value(const FieldRef& ref) {
    return std::visit(
        [](const auto& r) -> double {
            using T = std::remove_pointer_t<std::decay_t<decltype(r)>>;
            if constexpr (std::is_arithmetic_v<T>) return static_cast<double>(*r);
            else return 0.0;
        },
        ref);
}

bool is_numeric(const FieldRef& ref) {
    return std::visit([](const auto& r) { return std::is_arithmetic_v<std::remove_pointer_t<std::decay_t<decltype(r)>>>; }, ref) &&
           !std::holds_alternative<bool*>(ref);
}

class Loader {
public:
    Loader(RunConfig& cfg, std::string source) : cfg_(cfg), source_(std::move(source)), fields_(fields_of(cfg)) {}

    void load_yaml(const std::string& text) {
        YAML::Node root;
        try {
            root = YAML::Load(text);
        } catch (const YAML::ParserException& e) {
            throw Error("invalid YAML: " + e.msg, describe_mark(source_, e.mark), "fix the syntax at that line");
        }
        if (root.IsNull()) return;
        if (!root.IsMap()) {
            throw Error("a config must be a mapping of keys (stage:, model:, …)", describe_mark(source_, root.Mark()), "");
        }
        walk(root, "");
    }

    void apply_override(const std::string& assignment) {
        auto eq = assignment.find('=');
        std::string where = "--set " + assignment;
        if (eq == std::string::npos || eq == 0) {
            errors_.push_back(where + ": expected key=value, e.g. --set train.max_steps=100");
            return;
        }
        std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
        const Field* field = find(key);
        if (!field) {
            errors_.push_back(where + ": unknown key '" + key + "' (" + suggest(key, fields_) + ")");
            return;
        }
        YAML::Node node;
        try {
            node = value.empty() ? YAML::Node(std::string()) : YAML::Load(value);
        } catch (const YAML::ParserException& e) {
            errors_.push_back(where + ": cannot parse value: " + e.msg);
            return;
        }
        if (node.IsNull() && std::holds_alternative<std::string*>(field->ref)) node = YAML::Node(std::string());
        set(*field, node, "--set " + key);
    }

    void finish() {
        std::set<std::string> explicit_keys;
        for (const auto& [k, _] : locations_) explicit_keys.insert(k);
        if (!apply_model_preset(cfg_.model, explicit_keys)) {
            // Reported by the choices check below.
        }
        // A llama block's MLP is SwiGLU: its activation is SiLU unless the config says otherwise
        // (which validate() then refuses by name).
        if (cfg_.model.arch == ModelArch::Llama && !explicit_keys.count("model.activation")) cfg_.model.activation = Activation::Silu;
        validate();
        cfg_.given_keys.assign(explicit_keys.begin(), explicit_keys.end());
        if (!errors_.empty()) {
            std::string all;
            for (size_t i = 0; i < errors_.size(); ++i) all += (i ? "\n" : "") + errors_[i];
            throw Error(all);
        }
    }

private:
    const Field* find(const std::string& key) const {
        for (const auto& f : fields_) if (f.key == key) return &f;
        return nullptr;
    }

    bool is_section(const std::string& prefix) const {
        for (const auto& f : fields_) if (f.key.rfind(prefix + ".", 0) == 0) return true;
        return false;
    }

    void walk(const YAML::Node& map, const std::string& prefix) {
        std::map<std::string, std::string> seen;  // name -> where, in this mapping
        for (const auto& kv : map) {
            if (!kv.first.IsScalar()) {
                errors_.push_back(describe_mark(source_, kv.first.Mark()) + ": a key must be a plain name");
                continue;
            }
            std::string name = kv.first.Scalar();
            std::string key = prefix.empty() ? name : prefix + "." + name;
            std::string where = describe_mark(source_, kv.first.Mark());
            // YAML forbids a key twice in one mapping; yaml-cpp keeps both and the last would win.
            if (auto [it, fresh] = seen.emplace(name, where); !fresh) {
                errors_.push_back(where + ": '" + key + "' is given twice (first at " + it->second + ")");
                continue;
            }
            if (const Field* field = find(key)) {
                set(*field, kv.second, where);
            } else if (is_section(key)) {
                if (kv.second.IsMap()) walk(kv.second, key);
                else if (!kv.second.IsNull())
                    errors_.push_back(where + ": " + key + ": expected a mapping of " + key + ".* keys");
            } else {
                errors_.push_back(where + ": unknown key '" + key + "' (" + suggest(key, fields_) + ")");
            }
        }
    }

    void set(const Field& field, const YAML::Node& node, const std::string& where) {
        std::string problem = assign(field, node);
        if (!problem.empty()) {
            errors_.push_back(where + ": " + field.key + ": " + problem);
            return;
        }
        locations_[field.key] = where;
    }

    std::string location(const std::string& key) const {
        auto it = locations_.find(key);
        return it != locations_.end() ? it->second : source_;
    }

    void fail(const std::string& key, const std::string& message) {
        errors_.push_back(location(key) + ": " + key + ": " + message);
    }

    void validate() {
        for (const auto& f : fields_) {
            if (is_numeric(f.ref)) {
                double v = numeric_value(f.ref);
                if (v < f.min || v > f.max) {
                    fail(f.key, fmt::format("{} is out of range [{}, {}]", value_text(f.ref), f.min, f.max));
                }
            }
            if (!f.choices.empty()) {
                const std::string& v = *std::get<std::string*>(f.ref);
                if (std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end()) {
                    fail(f.key, fmt::format("'{}' is not one of: {}", v, fmt::join(f.choices, ", ")));
                }
            }
        }
        for (const auto& problem : config_problems(cfg_)) fail(problem.key, problem.message);
    }

    RunConfig& cfg_;
    std::string source_;
    std::vector<Field> fields_;
    std::map<std::string, std::string> locations_;  // key -> where it was set
    std::vector<std::string> errors_;
};

}  // namespace

RunConfig load_config_text(const std::string& yaml, const std::string& source,
                           const std::vector<std::string>& overrides) {
    RunConfig cfg;
    cfg.source = source;
    Loader loader(cfg, source);
    loader.load_yaml(yaml);
    for (const auto& o : overrides) loader.apply_override(o);
    loader.finish();
    return cfg;
}

RunConfig load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
    if (!std::filesystem::exists(path)) {
        throw Error("config file not found", path.string(), "check the path (configs/ holds the shipped ones)");
    }
    return load_config_text(read_file(path), path.string(), overrides);
}

std::string dump_config(const RunConfig& cfg) {
    RunConfig copy = cfg;
    YAML::Emitter out;
    out << YAML::BeginMap;
    std::string section;
    for (const auto& f : fields_of(copy)) {
        auto dot = f.key.find('.');
        std::string sec = dot == std::string::npos ? "" : f.key.substr(0, dot);
        std::string name = dot == std::string::npos ? f.key : f.key.substr(dot + 1);
        if (sec != section) {
            if (!section.empty()) out << YAML::EndMap;
            if (!sec.empty()) out << YAML::Key << sec << YAML::Value << YAML::BeginMap;
            section = sec;
        }
        out << YAML::Key << name << YAML::Value;
        std::visit(
            [&](const auto& r) {
                using T = std::remove_pointer_t<std::decay_t<decltype(r)>>;
                if constexpr (std::is_same_v<T, EnumRef>) {
                    out << r.names.at(r.get());
                } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                    const auto* v = r;
                    out << YAML::Flow << YAML::BeginSeq;
                    for (const auto& s : *v) out << YAML::DoubleQuoted << s;
                    out << YAML::EndSeq;
                } else if constexpr (std::is_same_v<T, std::string>) {
                    out << YAML::DoubleQuoted << *r;
                } else if constexpr (std::is_same_v<T, bool>) {
                    out << (*r ? "true" : "false");
                } else {
                    out << fmt::format("{}", *r);  // shortest text that reads back exactly
                }
            },
            f.ref);
    }
    if (!section.empty()) out << YAML::EndMap;
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
}

std::vector<ConfigKeyDoc> config_key_docs() {
    RunConfig defaults;
    std::vector<ConfigKeyDoc> docs;
    for (const auto& f : fields_of(defaults)) docs.push_back({f.key, value_text(f.ref), f.doc});
    return docs;
}

std::string config_keys_markdown() {
    auto cell = [](const std::string& text) {  // a '|' would end the cell
        std::string out;
        for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
        return out;
    };
    std::string out = "| key | default | meaning |\n|---|---|---|\n";
    for (const auto& k : config_key_docs()) {
        out += "| `" + k.key + "` | " + (k.default_value.empty() ? std::string("\"\"") : "`" + cell(k.default_value) + "`") +
               " | " + cell(k.doc) + " |\n";
    }
    return out;
}

}  // namespace rlhf
