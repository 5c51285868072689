// The run configuration: plain structs, one per YAML section, every field with a default and a
// one-line meaning. YAML mirrors these structs key for key (see docs/config.md and
// configs/tiny/pretrain.yaml); config/load.h reads, overrides, validates and dumps them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rlhf/config/enums.h"

namespace rlhf {

struct RuntimeConfig {
    int         threads   = 0;          // intra-op threads; 0 = all cores (LibTorch alone starts with 1)
    uint64_t    seed      = 1337;       // seeds weights, dropout and the data sampler
    std::string device    = "cpu";      // cpu | cuda | cuda:N | auto
    std::string dtype     = "float32";  // float32 | bfloat16 (autocast for matmuls; weights stay fp32)
    std::string log_level = "info";     // debug | info | warn | error
    double      dist_timeout = 600;     // seconds a rank waits for the others (distributed runs)
    double      dist_bucket_mb = 25;    // gradients all-reduced per bucket (distributed runs)
    bool        adapt_threads = true;   // one intra-op thread while other processes keep the CPUs busy
    bool        deterministic = false;  // one seed, one result: fixed threads, deterministic kernels
};

// LoRA (Hu et al. 2021; model/lora.h): the base weights frozen, a low-rank update trained beside
// each targeted projection. Not a shape key: a LoRA run starts from any checkpoint of its shape.
struct LoraConfig {
    int         rank    = 0;            // r of each adapter; 0 = no LoRA (full fine-tuning)
    double      alpha   = 16;           // the update is scaled by alpha / rank
    double      dropout = 0.0;          // on each adapter's input, while training
    std::vector<std::string> targets = {"q", "v"};  // q k v o (both archs); gate up down (llama); fc proj (gpt2's MLP)
};

struct ModelConfig {
    std::string preset     = "custom";  // custom | gpt2 … gpt2-xl | smollm2-135m … llama-3.2-1b (presets.h)
    ModelArch   arch       = ModelArch::Gpt2;  // gpt2 (pre-LN) | gpt1 (post-LN) | llama (RoPE, RMSNorm, SwiGLU)
    int         n_layer    = 4;
    int         n_head     = 4;
    int         n_embd     = 128;
    int         block_size = 64;        // context window in tokens
    int         vocab_size = 0;         // 0 = the tokenizer's size; else >= it (padding for speed)
    bool        bias       = false;     // biases in Linear and LayerNorm layers (gpt2, gpt1)
    Activation  activation = Activation::Gelu;  // gelu (exact, erf) | gelu_tanh (GPT-2's "gelu_new"); llama: silu (SwiGLU)
    double      dropout    = 0.0;       // on embeddings, attention weights and residual branches

    // The Llama/Qwen family (arch: llama); other archs keep the defaults.
    int         n_kv_head  = 0;         // key/value heads (grouped-query attention); 0 = n_head
    int         head_dim   = 0;         // width of one head; 0 = n_embd / n_head (Qwen3 sets its own)
    int         intermediate_size = 0;  // MLP hidden width; 0 = 4 * n_embd
    double      norm_eps   = 1e-5;      // RMSNorm epsilon (LayerNorm: always 1e-5)
    double      rope_theta = 10000;     // rotary base
    RopeScaling rope_scaling = RopeScaling::None;  // none | llama3 (Llama-3.1/3.2's long-context frequency scaling)
    double      rope_factor = 8;              // llama3 scaling: factor
    double      rope_low_freq_factor = 1;     // llama3 scaling: low_freq_factor
    double      rope_high_freq_factor = 4;    // llama3 scaling: high_freq_factor
    int         rope_original_context = 8192; // llama3 scaling: original_max_position_embeddings
    bool        qkv_bias   = false;     // biases on the q, k, v projections (Qwen2)
    bool        qk_norm    = false;     // RMSNorm on each head's q and k (Qwen3)
    bool        tie_embeddings = true;  // the LM head is the token embedding; false = its own lm_head

    LoraConfig  lora;                   // adapters trained instead of the weights (rank 0 = off)
};

struct TokenizerConfig {
    std::string path       = "";        // tokenizer dir; "" = train one into <out_dir>/tokenizer
    std::string model_type = "char";    // when training: bpe | unigram | char
    int         vocab_size = 0;         // when training: target size (0 = all characters, char only)
};

struct ChatConfig {
    std::string template_ = "auto";  // auto (the tokenizer's own; ours when it has none) | rlhf | chatml | llama3
};

struct DataConfig {
    std::vector<std::string> text;         // raw text files, tokenized into <out_dir>/data on first run
    std::string              shards = "";  // or: a directory made by `rlhf data prepare`
    double                   val_fraction = 0.1;  // tail of the token stream held out (text only)
    DataSampler              sampler = DataSampler::Epoch; // epoch (every token once per epoch) | random (nanoGPT)

    // Example files (sft, reward): JSONL, gzipped JSONL or JSON arrays, read as
    // data/sft_examples.h (sft) and data/comparisons.h (reward) describe.
    std::vector<std::string> files;
    std::vector<std::string> val_files;            // held-out examples; empty = val_fraction of files
    DataFormat               format = DataFormat::Auto; // sft: auto | prompt_response | gsm8k | alpaca | messages
                                                   // reward: auto | ranked | pairwise | hh | pandalm
    struct Fields {                                // source key names; "" = the format's own
        std::string prompt, response, messages;
        std::string answer;                        // ppo with a checker reward: the gold answer's key ("" = "answer")
        std::string text, text_b, choices, label;  // classify, JSONL: the task's keys (data/task_examples.h)
    } fields;
    OnError                  on_error = OnError::Error; // error: stop at a bad record | skip: count and leave it out
    bool                     packing = false;      // several examples per window, no attention across them
    TooLong                  too_long = TooLong::Truncate;  // truncate (prompt from the left, reply from the right) | skip
    double                   min_prompt_fraction = 0.5;  // a truncated prompt keeps at least this share of the window
};

struct OptimConfig {
    double  lr              = 6e-4;   // peak learning rate, reached at the end of warmup
    double  min_lr          = 6e-5;   // floor of the cosine decay
    int64_t lr_warmup_steps = 100;    // linear warmup from 0 over these steps
    int64_t lr_decay_steps  = 0;      // cosine from lr to min_lr ends here; 0 = train.max_steps
    double  weight_decay    = 0.1;    // decoupled (AdamW); on >=2-D tensors only
    double  beta1           = 0.9;
    double  beta2           = 0.95;
    double  eps             = 1e-8;
    EpsStyle eps_style      = EpsStyle::Torch; // torch: eps added to sqrt(v_hat); tf: to sqrt(v) (TF1 Adam, OpenAI's RLHF code)
    double  grad_clip       = 1.0;    // max global gradient norm; 0 disables clipping
};

struct TrainConfig {
    int64_t max_steps        = 1000;  // optimizer steps
    int     batch_size       = 12;    // sequences per micro-batch
    int     grad_accum_steps = 1;     // micro-batches per optimizer step
    int64_t eval_every       = 250;   // steps between train/val loss evaluations; 0 = only at the end
    int     eval_batches     = 20;    // batches per split in each evaluation
    int64_t log_every        = 10;    // steps between console log lines (metrics.jsonl gets every step)
    int     eval_prompts     = 16;    // sft, ppo: held-out prompts answered at each eval -> EOS rate, score
    int     log_samples      = 2;     // sft, ppo: of those, how many are printed in the log
    std::string activation_checkpointing = "none";  // none | blocks | every_N (segments of N blocks keep
                                                    // only their input; recomputed in the backward)
};

// train.activation_checkpointing as blocks per segment: none 0, blocks 1, every_N N; -1 = not a
// valid value (config/validate.cpp reports it).
int64_t activation_checkpoint_blocks(const TrainConfig& train);

struct RewardConfig {
    double                   margin = 0.0;          // loss -log σ(r_better - r_worse - margin); 0 = InstructGPT
    RewardNormalize          normalize = RewardNormalize::Bias; // bias: reference mean 0 | gain_bias: mean 0, std 1 | none
    std::vector<std::string> reference_files;       // demonstrations (sft formats) to normalise on; empty = the
                                                    // best response of each training group
    int                      reference_count = 512; // at most this many reference responses are scored
    int64_t                  micro_batch_tokens = 8192;  // padded tokens per forward+backward (memory bound); 0 = all
};

// PPO (stage: ppo). init_from is the SFT policy; train.max_steps counts PPO iterations (one
// rollout batch each); train.batch_size is the micro-batch of the gradient accumulation.
struct PpoConfig {
    std::string reward_model = "";        // reward checkpoint (stage: reward), normalisation applied
    std::string toy_reward = "";          // instead of a reward model: "count:TEXT" scores how often TEXT's
                                          // token appears in the response (a known optimum, for tests)
    CriticFrom  critic_from = CriticFrom::Reward; // reward: a copy of the reward model (InstructGPT) | policy: the SFT trunk
    int         rollout_batch = 16;       // prompts per iteration (episodes)
    int         rollout_chunk = 64;       // sequences generated, scored and run through the policy, reference
                                          // and critic together: bounds a rollout's KV cache and logits
    int         minibatch = 8;            // sequences per optimizer step
    int         epochs = 1;               // PPO passes over each rollout batch (InstructGPT 1, OpenAI 2019 4)
    int         max_new_tokens = 64;      // response length cap
    double      temperature = 1.0;        // rollout sampling temperature (log-probs use logits / T too)
    double      reference_temperature = 0.0;  // the reference's log-probs in the KL use logits / this:
                                          // below the rollout's, the anchor is a sharper SFT model; 0 = temperature
    double      kl_coef = 0.02;           // β of the per-token KL penalty (InstructGPT 0.02)
    double      kl_target = 0.0;          // > 0: adapt β toward this KL per sequence (Ziegler: 6)
    double      kl_horizon = 10000;       // episodes over which β adapts
    KlEstimator kl_estimator = KlEstimator::K1; // k1 | k2 | k3
    double      clip = 0.2;               // policy ratio clip ε
    double      value_clip = 0.2;         // value clip ε_v
    double      vf_coef = 0.1;            // value-loss weight
    double      gamma = 1.0;              // GAE discount
    double      lambda = 0.95;            // GAE λ
    bool        missing_eos_penalty = true;   // a response that never ends scores missing_eos_score
    double      missing_eos_score = -1.0;
    double      score_clip = 0.0;         // clip scores to ±this; 0 = off
    bool        whiten_rewards = false;   // scale per-token rewards per batch (mean kept)
    bool        whiten_advantages = true; // scale each minibatch's advantages to std 1 (false: mean removed only,
                                          // so that steps shrink as the reward left to gain does)
    double      ptx_coef = 0.0;           // PPO-ptx γ: pre-training loss weight (InstructGPT 27.8); 0 = off
    std::string ptx_shards = "";          // token shards for PPO-ptx (rlhf data prepare)
    int         ptx_batch = 4;            // pre-training windows per optimizer step
    double      ema_decay = 0.0;          // EMA of policy weights (InstructGPT 0.992); 0 = off
    double      critic_lr = 0.0;          // 0 = optim.lr
    std::string frozen_dtype = "auto";    // reference and reward models: auto (runtime.dtype) | float32 | bfloat16
    CheckInvariants check_invariants = CheckInvariants::Error;  // rl/invariants.h, every iteration: error | warn | off

    // Critic-free policy gradients (docs/grpo.md): G samples per prompt, each scored against its group.
    Advantage   advantage = Advantage::Gae; // gae (critic) | grpo (group-normalised) | rloo (leave-one-out); no critic for the last two
    int         group_size = 1;           // samples per prompt (G); grpo and rloo need >= 2
    bool        scale_by_std = true;      // grpo: divide by the group's std; false = Dr.GRPO
    LossAggregation loss_aggregation = LossAggregation::TokenMean;  // token_mean | sequence_mean | token_sum (÷ max_new_tokens: Dr.GRPO)
    double      clip_low = 0.0;           // ratio clip below 1 (1 - clip_low); 0 = ppo.clip
    double      clip_high = 0.0;          // ratio clip above 1 (1 + clip_high; DAPO's clip-higher 0.28); 0 = ppo.clip
    KlPenalty   kl_penalty = KlPenalty::Reward; // reward: -β·KL in the per-token reward | loss: β·k3 added to the policy loss (GRPO)
    // Rewards: the reward model (or toy reward), a verifiable checker, or both weighted.
    RewardSource reward = RewardSource::Model; // model | checker:ages | checker:gsm8k
    double      checker_weight = 1.0;     // weight of the checker's 0/1 when a reward model scores too
    double      reward_model_weight = 1.0; // weight of the reward model's score when a checker scores too
    double      format_reward = 0.0;      // added when the response has the checker's answer format
    // The sampler/trainer log-prob gap (bf16 or GPU rollouts): each token's policy loss weighed by
    // w = π_trainer / π_sampler, truncated at the cap (tis) or 0 outside [1/cap, cap] (mask).
    RolloutCorrection rollout_correction = RolloutCorrection::None;  // none | tis | mask
    double      rollout_correction_cap = 2.0;  // tis: w <= this; mask: 1/this <= w <= this
    // How rollouts are decoded (model/rollout_engine.h).
    RolloutEngine rollout_engine = RolloutEngine::Continuous;  // continuous | static (the reference)
    // Silent-failure alarms (rl/silent_failures.h): a warning and a metric when, over the last
    // alarm_window iterations, a run is learning nothing although nothing failed.
    int         alarm_window = 10;            // iterations; 0 = no alarms
    double      alarm_truncated_share = 0.5;  // responses cut at max_new_tokens, mean share above this
    double      alarm_reward_std = 1e-6;      // the scores' spread at or below this in every iteration
    double      alarm_uniform_groups = 0.9;   // grpo, rloo: groups with one score for all, mean share above this
};

// DPO (stage: dpo; Rafailov et al. 2023): the policy from init_from trained directly on the
// comparisons the reward stage reads, against a frozen reference (init_from's weights).
struct DpoConfig {
    double      beta = 0.1;               // strength of the implicit KL to the reference
    DpoLoss     loss = DpoLoss::Sigmoid; // sigmoid (DPO) | ipo (Azar et al. 2023)
    double      label_smoothing = 0.0;    // ε: the share of pairs assumed mislabeled (conservative DPO)
    std::string reference = "";           // the frozen reference checkpoint; "" = init_from
};

// GPT-1's task fine-tuning (stage: classify; Radford et al. 2018, docs/gpt1-tasks.md): the
// trunk from init_from (or fresh), a linear head on the extract token, L = task loss + λ·LM loss.
struct TaskConfig {
    TaskType    type = TaskType::Classification; // classification | entailment | similarity | multiple_choice
    int         num_classes = 2;          // classes; similarity: 1 = regression on the score (MSE)
    std::vector<std::string> labels;      // class names in index order; empty = the format's own (RTE) or indices
    double      score_min = 0.0;          // similarity regression: the score range (STS-B 0-5); a score outside
    double      score_max = 5.0;          //   it is a data error; predictions are read in this range
    double      lm_coef = 0.5;            // λ: weight of the auxiliary LM loss on the input tokens; 0 = off
    double      head_dropout = 0.1;       // dropout on the head's input (GPT-1: 0.1)
};

struct CheckpointConfig {
    int64_t every     = 250;  // steps between checkpoints (one is always written at the end); 0 = end only
    int     keep_last = 3;    // newest checkpoints kept; older ones are deleted; 0 = keep all
    bool    export_hf = false;  // also write <step>/hf: the model as transformers loads it (GPT-2 layout)
};

struct RunConfig {
    Stage            stage   = Stage::Pretrain;  // pretrain | sft | reward | ppo | dpo | classify
    std::string      out_dir = "runs/default";  // run directory: logs, metrics, checkpoints
    std::string      init_from = "";            // sft, reward, ppo, dpo, classify: the checkpoint (or run directory) to start from
    RuntimeConfig    runtime;
    ModelConfig      model;
    TokenizerConfig  tokenizer;
    ChatConfig       chat;
    DataConfig       data;
    OptimConfig      optim;
    TrainConfig      train;
    RewardConfig     reward;
    PpoConfig        ppo;
    DpoConfig        dpo;
    TaskConfig       task;
    CheckpointConfig checkpoint;

    std::string source;  // where this config came from (a path, or "<defaults>"); not a YAML key
    std::vector<std::string> given_keys;  // keys the YAML or a --set gave, even at their default; not a YAML key
};

}  // namespace rlhf
