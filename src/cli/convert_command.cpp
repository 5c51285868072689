// rlhf convert: Hugging Face weights (GPT-2, Llama, Qwen2, Qwen3) into a checkpoint every stage and
// command reads, and a checkpoint out to Hugging Face's format.
#include <spdlog/spdlog.h>

#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/checkpoint/hf_gpt2.h"
#include "rlhf/checkpoint/hf_llama.h"
#include "rlhf/checkpoint/peft.h"
#include "rlhf/cli/commands.h"
#include "rlhf/cli/sampling_flags.h"
#include "rlhf/core/error.h"

namespace rlhf::cli {

void add_convert_command(CLI::App& app, Action& action) {
    struct Args {
        std::string from_hf, to_hf, to_peft, from_peft, base, out, weights = "auto";
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "convert", "Convert Hugging Face weights (config.json, model.safetensors or its shards, a byte-level BPE "
                   "tokenizer) of GPT-2, Llama, Qwen2 or Qwen3 into a checkpoint that init_from, generate and chat "
                   "accept, or a checkpoint into a directory transformers' from_pretrained loads (a LoRA checkpoint's "
                   "adapters merged); a LoRA checkpoint's adapters to PEFT's format and back");
    auto* from = cmd->add_option("--from-hf", args->from_hf,
                                 "A directory saved by transformers: GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM "
                                 "or Qwen3ForCausalLM");
    auto* to = cmd->add_option("--to-hf", args->to_hf,
                               "A checkpoint (run or step directory) to write as its family's ...ForCausalLM (GPT2LMHeadModel, "
                               "LlamaForCausalLM, Qwen2/Qwen3ForCausalLM), or ...ForSequenceClassification for a reward "
                               "model (docs/checkpoint-format.md)");
    auto* to_peft = cmd->add_option("--to-peft", args->to_peft,
                                    "A LoRA checkpoint (model.lora) to write as a PEFT adapter (adapter_config.json, "
                                    "adapter_model.safetensors) for its base's --to-hf export");
    auto* from_peft = cmd->add_option("--from-peft", args->from_peft,
                                      "A PEFT LoRA adapter directory to read onto --base, written as a LoRA checkpoint");
    auto* base = cmd->add_option("--base", args->base, "--from-peft: the checkpoint of the adapter's base model "
                                                       "(e.g. its --from-hf import)");
    from->excludes(to)->excludes(to_peft)->excludes(from_peft);
    to->excludes(to_peft)->excludes(from_peft);
    to_peft->excludes(from_peft);
    from_peft->needs(base);
    add_weights_flag(*cmd, args->weights);
    cmd->add_option("--out", args->out,
                    "--from-hf, --from-peft: run directory to create (RUN/checkpoints/step-000000); --to-hf, --to-peft: "
                    "directory to create")
        ->required();
    cmd->callback([args, &action] {
        action = [args] {
            const std::filesystem::path out = args->out;
            const int given = !args->from_hf.empty() + !args->to_hf.empty() + !args->to_peft.empty() + !args->from_peft.empty();
            if (given != 1) {
                throw Error("give one of --from-hf DIR, --to-hf CHECKPOINT, --to-peft CHECKPOINT or --from-peft DIR --base CHECKPOINT",
                            "rlhf convert", "");
            }
            if (!args->to_peft.empty()) {
                export_peft_adapter(args->to_peft, out);
                spdlog::info("wrote {}: adapter_config.json and adapter_model.safetensors (peft: PeftModel.from_pretrained(base, DIR))",
                             out.string());
                return 0;
            }
            if (!args->from_peft.empty()) {
                if (std::filesystem::exists(out / "checkpoints")) throw Error("already holds checkpoints", out.string(), "choose another --out");
                const auto dir = import_peft_adapter(args->from_peft, args->base, out);
                spdlog::info("wrote {}: the adapters of {} on the base {}", dir.string(), args->from_peft, args->base);
                return 0;
            }
            if (!args->to_hf.empty()) {
                export_checkpoint_to_hf(args->to_hf, out, args->weights);  // a LoRA checkpoint: adapters merged
                spdlog::info("wrote {}: config.json, model.safetensors and the tokenizer's files "
                             "(transformers: AutoModelForCausalLM / AutoModelForSequenceClassification.from_pretrained)",
                             out.string());
                return 0;
            }
            if (std::filesystem::exists(out / "checkpoints")) {
                throw Error("already holds checkpoints", out.string(), "choose another --out");
            }
            // Everything is read and checked before anything is written.
            ImportedHfModel imported = import_hf_model(args->from_hf);
            RunConfig cfg;
            cfg.stage = Stage::Pretrain;
            cfg.source = "rlhf convert";
            cfg.out_dir = out.string();
            cfg.model = imported.config;
            // Where the weights came from; a pre-training resume would find no shards there and say so.
            cfg.data.shards = std::filesystem::absolute(args->from_hf).string();
            CheckpointExtras extras;
            extras.stage_state = {{"lineage", {{"converted_from", cfg.data.shards}, {"format", "huggingface " + name_of(cfg.model.arch)}}}};
            const auto dir = save_checkpoint(out / "checkpoints", cfg, TrainState{}, *imported.model, OptimizerState{},
                                             imported.tokenizer, 0, extras);
            spdlog::info("wrote {}: {} with {} parameters ({} layers, {} heads, {} embd, context {}, embedding rows {}; "
                         "tokenizer {} + added {})",
                         dir.string(), cfg.model.arch, imported.model->num_parameters(), cfg.model.n_layer, cfg.model.n_head,
                         cfg.model.n_embd, cfg.model.block_size, cfg.model.vocab_size, imported.tokenizer.spm_vocab_size(),
                         fmt::join(imported.tokenizer.added_tokens(), " "));
            return 0;
        };
    });
}

}  // namespace rlhf::cli
