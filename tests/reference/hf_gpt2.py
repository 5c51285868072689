"""Hugging Face transformers as the reference for `rlhf convert --from-hf`.

  hf_gpt2.py make DIR         a random GPT-2 (2 layers, 32 wide, DIR's vocab.json) saved twice:
                              DIR/lm (GPT2LMHeadModel: "transformer.*" names) and DIR/hub
                              (GPT2Model: the hub's unprefixed names); every tensor random, biases
                              and layer norms included, so a wrong mapping cannot pass
  hf_gpt2.py logits DIR IDS   logits (B, T, V) of DIR/lm for the JSON batch IDS
                              {"ids": [[...]], "mask": [[...]]} (left padding), as JSON
"""
import json
import shutil
import sys

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

transformers.utils.logging.disable_progress_bar()  # stdout/stderr carry only the result


def make(d):
    vocab = json.load(open(f"{d}/vocab.json"))
    cfg = GPT2Config(vocab_size=len(vocab), n_positions=32, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=len(vocab) - 1, eos_token_id=len(vocab) - 1)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    for sub, m in (("lm", model), ("hub", model.transformer)):
        m.save_pretrained(f"{d}/{sub}", safe_serialization=True)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(f"{d}/{f}", f"{d}/{sub}/{f}")


def logits(d, batch):
    model = GPT2LMHeadModel.from_pretrained(f"{d}/lm").eval()
    b = json.loads(batch)
    ids, mask = torch.tensor(b["ids"]), torch.tensor(b["mask"])
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    print("\n" + json.dumps(out.tolist()))  # the last line


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        logits(sys.argv[2], sys.argv[3])
