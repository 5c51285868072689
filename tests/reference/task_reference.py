"""Independent reference of GPT-1's fine-tuning heads and objective (Radford et al. 2018, eq. 3-5)
from the trunk's final hidden states, in float64 with PyTorch; and Pearson/Spearman with SciPy.

usage: task_reference.py INPUT.json [INPUT.json ...]   (one Python start for several cases)
INPUT: {"type": classification | entailment | similarity | multiple_choice, "regression": bool,
        "hidden": [R][T][C], "ids": [R][T], "lengths": [R] (real tokens per row, right-padded),
        "rows_per_example", "head_w": [N][C], "head_b": [N], "wte": [V][C], "labels": [B],
        "lm_coef", "x": [...], "y": [...]}
prints one JSON line per INPUT: {"scores": B x N (or B for a regression), "task_loss_sum", "lm_loss_sum", "lm_targets",
              "loss" (task mean + lm_coef x LM mean), "pearson", "spearman"}
"""
import json
import sys

import scipy.stats
import torch
import torch.nn.functional as F


def reference(c):
    h = torch.tensor(c["hidden"], dtype=torch.float64)  # (R, T, C)
    ids = torch.tensor(c["ids"], dtype=torch.long)
    lengths = c["lengths"]
    w = torch.tensor(c["head_w"], dtype=torch.float64)
    b = torch.tensor(c["head_b"], dtype=torch.float64)
    wte = torch.tensor(c["wte"], dtype=torch.float64)
    R = h.shape[0]
    # The extract token is each row's last real one.
    extract = torch.stack([h[r, lengths[r] - 1] for r in range(R)])  # (R, C)
    if c["type"] == "similarity":
        extract = extract[0::2] + extract[1::2]  # both orders, added
    scores = extract @ w.T + b
    if c["type"] == "multiple_choice":
        scores = scores.view(-1, c["rows_per_example"])  # one scalar per choice
    if c["regression"]:
        scores = scores.squeeze(1)
        task = ((scores - torch.tensor(c["labels"], dtype=torch.float64)) ** 2).sum()
    else:
        task = F.cross_entropy(scores, torch.tensor(c["labels"]).long(), reduction="sum")
    # LM: every real token but the last predicts the next one.
    lm, targets = torch.zeros((), dtype=torch.float64), 0
    for r in range(R):
        L = lengths[r]
        logits = h[r, : L - 1] @ wte.T
        lm = lm + F.cross_entropy(logits, ids[r, 1:L], reduction="sum")
        targets += L - 1
    B = scores.shape[0]
    loss = task / B + c["lm_coef"] * lm / targets
    out = {"scores": scores.tolist(), "task_loss_sum": task.item(), "lm_loss_sum": lm.item(), "lm_targets": targets,
           "loss": loss.item(),
           "pearson": scipy.stats.pearsonr(c["x"], c["y"])[0], "spearman": scipy.stats.spearmanr(c["x"], c["y"])[0]}
    return out


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(json.dumps(reference(json.load(open(path)))))
