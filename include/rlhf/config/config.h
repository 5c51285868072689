// The run configuration: plain structs, one per YAML section, every field with a default and a
// one-line meaning. YAML mirrors these structs key for key (see docs/config.md and
// configs/tiny/pretrain.yaml); config/load.h reads, overrides, validates and dumps them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlhf {

struct RuntimeConfig {
    int         threads   = 0;          // intra-op threads; 0 = all cores (LibTorch alone starts with 1)
    uint64_t    seed      = 1337;       // seeds weights, dropout and the data sampler
    std::string device    = "cpu";      // cpu | cuda | cuda:N | auto
    std::string dtype     = "float32";  // float32 | bfloat16 (autocast for matmuls; weights stay fp32)
    std::string log_level = "info";     // debug | info | warn | error
};

struct ModelConfig {
    std::string preset     = "custom";  // custom | gpt2 | gpt2-medium | gpt2-large | gpt2-xl
    std::string arch       = "gpt2";    // gpt2 (pre-LN) | gpt1 (post-LN)
    int         n_layer    = 4;
    int         n_head     = 4;
    int         n_embd     = 128;
    int         block_size = 64;        // context window in tokens
    int         vocab_size = 0;         // 0 = the tokenizer's size; else >= it (padding for speed)
    bool        bias       = false;     // biases in Linear and LayerNorm layers
    double      dropout    = 0.0;       // on embeddings, attention weights and residual branches
};

struct TokenizerConfig {
    std::string path       = "";        // tokenizer dir; "" = train one into <out_dir>/tokenizer
    std::string model_type = "char";    // when training: bpe | unigram | char
    int         vocab_size = 0;         // when training: target size (0 = all characters, char only)
};

struct DataConfig {
    std::vector<std::string> text;         // raw text files, tokenized into <out_dir>/data on first run
    std::string              shards = "";  // or: a directory made by `rlhf data prepare`
    double                   val_fraction = 0.1;  // tail of the token stream held out (text only)
    std::string              sampler = "epoch";   // epoch (every token once per epoch) | random (nanoGPT)

    // Example files (sft): JSONL or JSON arrays, read as data/sft_examples.h describes.
    std::vector<std::string> files;
    std::vector<std::string> val_files;            // held-out examples; empty = val_fraction of files
    std::string              format = "auto";      // auto | prompt_response | gsm8k | alpaca | messages
    struct Fields {                                // source key names; "" = the format's own
        std::string prompt, response, messages;
    } fields;
    std::string              on_error = "error";   // error: stop at a bad record | skip: count and leave it out
    bool                     packing = false;      // several examples per window, no attention across them
    std::string              too_long = "truncate";  // truncate (prompt from the left, reply from the right) | skip
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
    double  grad_clip       = 1.0;    // max global gradient norm; 0 disables clipping
};

struct TrainConfig {
    int64_t max_steps        = 1000;  // optimizer steps
    int     batch_size       = 12;    // sequences per micro-batch
    int     grad_accum_steps = 1;     // micro-batches per optimizer step
    int64_t eval_every       = 250;   // steps between train/val loss evaluations; 0 = only at the end
    int     eval_batches     = 20;    // batches per split in each evaluation
    int64_t log_every        = 10;    // steps between console log lines (metrics.jsonl gets every step)
    int     eval_prompts     = 16;    // sft: validation prompts answered (greedy) at each eval -> EOS rate
    int     log_samples      = 2;     // sft: of those, how many are printed in the log
};

struct CheckpointConfig {
    int64_t every     = 250;  // steps between checkpoints (one is always written at the end); 0 = end only
    int     keep_last = 3;    // newest checkpoints kept; older ones are deleted; 0 = keep all
};

struct RunConfig {
    std::string      stage   = "pretrain";  // pretrain | sft (reward | ppo come in later issues)
    std::string      out_dir = "runs/default";  // run directory: logs, metrics, checkpoints
    std::string      init_from = "";            // sft: the checkpoint (or run directory) to start from
    RuntimeConfig    runtime;
    ModelConfig      model;
    TokenizerConfig  tokenizer;
    DataConfig       data;
    OptimConfig      optim;
    TrainConfig      train;
    CheckpointConfig checkpoint;

    std::string source;  // where this config came from (a path, or "<defaults>"); not a YAML key
};

}  // namespace rlhf
