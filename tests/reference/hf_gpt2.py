"""Hugging Face transformers as the reference for `rlhf convert --from-hf`.

  hf_gpt2.py make DIR         a random GPT-2 (2 layers, 32 wide, DIR's vocab.json) saved twice:
                              DIR/lm (GPT2LMHeadModel: "transformer.*" names) and DIR/hub
                              (GPT2Model: the hub's unprefixed names); every tensor random, biases
                              and layer norms included, so a wrong mapping cannot pass
  hf_gpt2.py logits DIR IDS   logits (B, T, V) of DIR/lm for the JSON batch IDS
                              {"ids": [[...]], "mask": [[...]]} (left padding), as JSON
  hf_gpt2.py causal DIR IDS   the same for DIR as `rlhf convert --to-hf` wrote it, loaded with
                              AutoModelForCausalLM
  hf_gpt2.py reward DIR IDS   scores (B,) of an exported reward model: AutoModelForSequenceClassification's
                              logit at the last non-pad token plus the exported score.bias
  hf_gpt2.py encode DIR TEXTS AutoTokenizer's ids for each text of the JSON list TEXTS, and whether
                              decoding them gives the text back
"""
import json
import shutil
import sys

import safetensors.torch
import torch
import transformers
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, GPT2Config,
                          GPT2LMHeadModel)

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


def logits(d, batch, model=None):
    model = model or GPT2LMHeadModel.from_pretrained(f"{d}/lm").eval()
    b = json.loads(batch)
    ids, mask = torch.tensor(b["ids"]), torch.tensor(b["mask"])
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    print("\n" + json.dumps(out.tolist()))  # the last line


def causal(d, batch):
    logits(d, batch, AutoModelForCausalLM.from_pretrained(d).eval())


def reward(d, batch):
    model = AutoModelForSequenceClassification.from_pretrained(d).eval()
    bias = safetensors.torch.load_file(f"{d}/model.safetensors")["score.bias"]
    b = json.loads(batch)
    ids, mask = torch.tensor(b["ids"]), torch.tensor(b["mask"])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).logits[:, 0] + bias
    print("\n" + json.dumps(out.tolist()))


def encode(d, texts):
    tok = AutoTokenizer.from_pretrained(d)
    rows = []
    for text in json.loads(texts):
        ids = tok.encode(text)
        rows.append({"ids": ids, "decoded_equal": tok.decode(ids) == text})
    print("\n" + json.dumps({"rows": rows, "pad": tok.pad_token_id, "eos": tok.eos_token_id}))


if __name__ == "__main__":
    {"make": lambda: make(sys.argv[2]), "logits": lambda: logits(sys.argv[2], sys.argv[3]),
     "causal": lambda: causal(sys.argv[2], sys.argv[3]), "reward": lambda: reward(sys.argv[2], sys.argv[3]),
     "encode": lambda: encode(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
