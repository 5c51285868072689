"""Independent reference of a LoRA training step's gradients, on the GPT of gpt_reference.py (float64).

usage: lora_reference.py WEIGHTS.safetensors CONFIG.json INPUTS.safetensors OUT.safetensors
WEIGHTS: the base model's tensors plus adapters <prefix>.lora_<target>.lora_A (r, in) and .lora_B (rows, r)
CONFIG: gpt_reference.py's keys plus "alpha" (the update is alpha / r x B A)
INPUTS: "x" (B, T) and "y" (B, T) int64: the loss is the mean cross-entropy of y given x
OUT: "loss" () and "grad.<adapter tensor>" for every adapter tensor

The adapters enter the way the LoRA paper writes them, as a change of the weight, W' = W + (alpha / r) B A
on the target's rows of its projection, and autograd takes the gradients through that sum; the model
under test adds (alpha / r) (x A^T) B^T to the projection's output instead.
"""
import json
import sys

import torch
import torch.nn.functional as F

import st
from gpt_reference import forward

# GPT-2's projections: [q | k | v] rows of attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj.
PLACES = {"q": ("attn.c_attn", 0), "k": ("attn.c_attn", 1), "v": ("attn.c_attn", 2),
          "o": ("attn.c_proj", 0), "fc": ("mlp.c_fc", 0), "proj": ("mlp.c_proj", 0)}


def main():
    tensors, _ = st.load(sys.argv[1])
    tensors = {k: v.double() for k, v in tensors.items()}
    cfg = json.load(open(sys.argv[2]))
    inputs, _ = st.load(sys.argv[3])
    adapters = {k: v.requires_grad_(True) for k, v in tensors.items() if ".lora_" in k}
    weights = {k: v for k, v in tensors.items() if ".lora_" not in k}
    for name in [k for k in adapters if k.endswith(".lora_A")]:
        adapter = name[: -len(".lora_A")]
        prefix, target = adapter.rsplit(".lora_", 1)
        block = prefix.rsplit(".", 1)[0]  # transformer.h.N
        linear, part = PLACES[target]
        A, B = adapters[adapter + ".lora_A"], adapters[adapter + ".lora_B"]
        update = (cfg["alpha"] / A.shape[0]) * (B @ A)  # (rows, in)
        key = f"{block}.{linear}.weight"
        rows = update.shape[0]
        pad = torch.zeros(weights[key].shape[0] - rows, update.shape[1], dtype=update.dtype)
        pieces = [pad[: part * rows], update, pad[part * rows:]]  # the update on its rows, 0 elsewhere
        weights[key] = weights[key] + torch.cat(pieces, 0)
    logits = forward(weights, cfg, inputs["x"])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), inputs["y"].reshape(-1))
    loss.backward()
    out = {"loss": loss.detach().reshape(1)}
    for k, v in adapters.items():
        out["grad." + k] = v.grad
    st.save(sys.argv[4], out)


if __name__ == "__main__":
    main()
