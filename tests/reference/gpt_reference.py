"""Independent reference forward of our GPT, written the nanoGPT way in plain PyTorch (float64).

usage: gpt_reference.py WEIGHTS.safetensors CONFIG.json INPUTS.safetensors OUT.safetensors
CONFIG: {"n_layer", "n_head", "n_embd", "arch": "gpt2"|"gpt1", "bias": bool}
INPUTS: "idx" (B, T) int64. OUT: "logits" (B, T, V) float64.
Weights use Hugging Face GPT-2 names with Linear layout (out, in); the LM head is transformer.wte.weight.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

import st


def layer_norm(x, w, prefix):
    return F.layer_norm(x, (x.shape[-1],), w[prefix + ".weight"], w.get(prefix + ".bias"), 1e-5)


def linear(x, w, prefix):
    return F.linear(x, w[prefix + ".weight"], w.get(prefix + ".bias"))


def attention(x, w, prefix, n_head):
    B, T, C = x.shape
    q, k, v = linear(x, w, prefix + ".c_attn").split(C, dim=2)
    q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(C // n_head)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).tril().logical_not(), float("-inf"))
    y = att.softmax(-1) @ v
    return linear(y.transpose(1, 2).reshape(B, T, C), w, prefix + ".c_proj")


def mlp(x, w, prefix):
    return linear(F.gelu(linear(x, w, prefix + ".c_fc")), w, prefix + ".c_proj")  # exact GELU


def forward(w, cfg, idx):
    T = idx.shape[1]
    x = w["transformer.wte.weight"][idx] + w["transformer.wpe.weight"][torch.arange(T)]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}"
        if cfg["arch"] == "gpt1":  # post-LN
            x = layer_norm(x + attention(x, w, p + ".attn", cfg["n_head"]), w, p + ".ln_1")
            x = layer_norm(x + mlp(x, w, p + ".mlp"), w, p + ".ln_2")
        else:  # pre-LN
            x = x + attention(layer_norm(x, w, p + ".ln_1"), w, p + ".attn", cfg["n_head"])
            x = x + mlp(layer_norm(x, w, p + ".ln_2"), w, p + ".mlp")
    if cfg["arch"] != "gpt1":
        x = layer_norm(x, w, "transformer.ln_f")
    return x @ w["transformer.wte.weight"].T


def main():
    weights, _ = st.load(sys.argv[1])
    weights = {k: v.double() for k, v in weights.items()}
    cfg = json.load(open(sys.argv[2]))
    inputs, _ = st.load(sys.argv[3])
    with torch.no_grad():
        logits = forward(weights, cfg, inputs["idx"])
    st.save(sys.argv[4], {"logits": logits})


if __name__ == "__main__":
    main()
