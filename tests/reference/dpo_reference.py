"""Independent reference of DPO's loss (Rafailov et al. 2023) and IPO's (Azar et al. 2023), as
TRL's DPOTrainer writes them, in float64 with autograd.

usage: dpo_reference.py INPUT.json [INPUT.json ...]   (one Python start for several cases)
INPUT: {"beta", "loss": "sigmoid" | "ipo", "label_smoothing", "policy_chosen", "policy_rejected",
        "ref_chosen", "ref_rejected"} (the last four: lists of summed log-probs, one per pair)
prints one JSON line per INPUT: {"loss": mean over pairs, "grad": {name: d loss / d input}, "chosen_rewards",
              "rejected_rewards", "accuracy", "margin"}
"""
import json
import sys

import torch
import torch.nn.functional as F

NAMES = ["policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected"]


def reference(c):
    x = {n: torch.tensor(c[n], dtype=torch.float64, requires_grad=True) for n in NAMES}
    beta, eps = c["beta"], c["label_smoothing"]
    pi_logratios = x["policy_chosen"] - x["policy_rejected"]
    ref_logratios = x["ref_chosen"] - x["ref_rejected"]
    logits = pi_logratios - ref_logratios
    if c["loss"] == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
    loss = losses.mean()
    loss.backward()
    chosen = beta * (x["policy_chosen"] - x["ref_chosen"]).detach()
    rejected = beta * (x["policy_rejected"] - x["ref_rejected"]).detach()
    accuracy = ((chosen > rejected).double() + 0.5 * (chosen == rejected).double()).mean()
    return {
        "loss": loss.item(),
        "grad": {n: x[n].grad.tolist() for n in NAMES},
        "chosen_rewards": chosen.tolist(),
        "rejected_rewards": rejected.tolist(),
        "accuracy": accuracy.item(),
        "margin": (chosen - rejected).mean().item(),
    }


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(json.dumps(reference(json.load(open(path)))))
