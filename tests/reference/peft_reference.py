"""Hugging Face PEFT as the reference for our LoRA adapters (`rlhf convert --to-peft / --from-peft`).

  peft_reference.py logits IDS BASE:ADAPTER...
      for each pair, logits (B, T, V) of transformers' model in BASE (fp32) with PEFT's adapter in
      ADAPTER put on it (PeftModel.from_pretrained; "-" = none), for the JSON batch {"ids": [[...]],
      "mask": [[...]]} (left padding): {"logits": {"BASE:ADAPTER": [...]}} as JSON on the last line
  peft_reference.py make BASE ADAPTER [IDS BASE:ADAPTER...]
      a random LoRA adapter made by PEFT itself for the model in BASE (q_proj and v_proj, or GPT-2's
      c_proj modules; r 4, alpha 8; B random so that it changes the model), saved to ADAPTER; then,
      given a batch and pairs, their logits as `logits` prints them (one Python start for both)
"""
import json
import sys

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

transformers.utils.logging.disable_progress_bar()


def logits(batch, pairs):
    b = json.loads(batch)
    ids, mask = torch.tensor(b["ids"]), torch.tensor(b["mask"])
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = {}
    for pair in pairs:
        base, adapter = pair.rsplit(":", 1)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        if adapter != "-":
            model = PeftModel.from_pretrained(model, adapter)
        with torch.no_grad():
            out[pair] = model.eval()(input_ids=ids, attention_mask=mask, position_ids=pos).logits.tolist()
    print(json.dumps({"logits": out}))


def make(base, adapter):
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    llama = model.config.model_type != "gpt2"
    targets = ["q_proj", "v_proj"] if llama else ["attn.c_proj", "mlp.c_proj"]
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    model.save_pretrained(adapter)


if __name__ == "__main__":
    if sys.argv[1] == "logits":
        logits(sys.argv[2], sys.argv[3:])
    else:
        make(sys.argv[2], sys.argv[3])
        if len(sys.argv) > 4:
            logits(sys.argv[4], sys.argv[5:])
