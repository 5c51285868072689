"""Independent reference of our training step: the GPT of gpt_reference.py (float32 here),
torch.optim.AdamW with nanoGPT's decay groups, clip_grad_norm_, and nanoGPT's get_lr.

usage: train_reference.py WEIGHTS.safetensors CONFIG.json BATCHES.safetensors OUT.safetensors
CONFIG: model keys of gpt_reference.py plus lr, min_lr, warmup, decay, weight_decay, beta1, beta2,
        eps, grad_clip, steps
BATCHES: "x" (steps, B, T) and "y" (steps, B, T) int64
OUT: "losses" (steps,) float64 and every final weight under its own name
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

import st
from gpt_reference import forward


def get_lr(it, c):  # nanoGPT train.py
    if it < c["warmup"]:
        return c["lr"] * (it + 1) / (c["warmup"] + 1)
    if it > c["decay"]:
        return c["min_lr"]
    ratio = (it - c["warmup"]) / (c["decay"] - c["warmup"])
    return c["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c["lr"] - c["min_lr"])


def main():
    torch.set_num_threads(1)
    weights, _ = st.load(sys.argv[1])
    params = {k: v.float().requires_grad_(True) for k, v in weights.items()}
    c = json.load(open(sys.argv[2]))
    batches, _ = st.load(sys.argv[3])
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"])
    losses = []
    for step in range(c["steps"]):
        for g in opt.param_groups:
            g["lr"] = get_lr(step, c)
        logits = forward(params, c, batches["x"][step])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batches["y"][step].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), c["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    out = {k: v.detach() for k, v in params.items()}
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    st.save(sys.argv[4], out)


if __name__ == "__main__":
    main()
