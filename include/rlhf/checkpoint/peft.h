// LoRA adapters in and out of Hugging Face PEFT's format: a directory with adapter_config.json
// and adapter_model.safetensors that peft.PeftModel.from_pretrained() puts on the base model's
// transformers export (rlhf convert --to-hf of the LoRA checkpoint's base).
//
//   llama family  our q k v o gate up down are PEFT's q_proj … down_proj, rank r each
//                 (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, …)
//   gpt2          o, fc, proj are attn.c_proj, mlp.c_fc, mlp.c_proj; our q, k and v adapters sit
//                 on rows of GPT-2's one c_attn projection, so they travel as ONE adapter of rank
//                 m·r there (m of them: A stacked, B block-diagonal), with rank_pattern and
//                 alpha_pattern keeping the scale alpha / r; reading one back needs that block
//                 structure (an adapter trained on c_attn as a whole has no per-projection split)
#pragma once

#include <filesystem>

namespace rlhf {

// Writes `checkpoint`'s own adapters (a model.lora run's; its base's are part of the base) to
// `dir`. An Error for a checkpoint without adapters, a reward model, or a run that grew its
// base's vocabulary (PEFT's adapter would not carry the new embedding rows).
void export_peft_adapter(const std::filesystem::path& checkpoint, const std::filesystem::path& dir);

// Reads a PEFT LoRA adapter directory for the model of `base` (a checkpoint: an import of the
// Hugging Face base) and writes a LoRA checkpoint run at `out_run` (step 0, stage sft) whose base is
// `base`'s weights. Returns its step directory. Unsupported settings (DoRA, rsLoRA, biases,
// modules_to_save, uneven ranks) are one Error each, naming the key.
std::filesystem::path import_peft_adapter(const std::filesystem::path& adapter_dir, const std::filesystem::path& base,
                                          const std::filesystem::path& out_run);

}  // namespace rlhf
