#!/usr/bin/python3
"""Plot a training run's curves from its metrics.jsonl into a PNG.

    scripts/plot_metrics.py runs/demo/pretrain runs/demo/sft runs/demo/reward runs/demo/ppo --out runs/demo/plots

One PNG per run, named after its directory (pretrain.png, sft.png, reward.png, dpo.png, grpo.png,
ppo.png in the demo), with the panels its stage has: losses for every stage, EOS rate for SFT,
pairwise accuracy for the reward model and DPO, score / KL / value loss and where each
iteration's time went for PPO (GRPO and RLOO, PPO stages without a critic, are titled by their
algorithm and have no value-loss panel). Runs with Debian's python3-matplotlib (scripts/setup.sh);
no display needed.
"""
import argparse
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on a training machine
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(run_dir):
    """Records of metrics.jsonl grouped by their "type" (train, eval, ...), in file order.
    A resumed run may log a step twice; the later record wins, as it is the one the run kept."""
    path = os.path.join(run_dir, "metrics.jsonl")
    by_type = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{line_no}: not JSON ({e.msg})")
            by_type.setdefault(record.get("type", "train"), {})[record.get("step", line_no)] = record
    return {t: [records[s] for s in sorted(records)] for t, records in by_type.items()}


def read_stage(run_dir):
    """The stage, and for ppo its algorithm: "ppo" (a critic, GAE), "grpo" or "rloo" (ppo.advantage)."""
    with open(os.path.join(run_dir, "config.yaml")) as f:
        text = f.read()
    match = re.search(r"^stage:\s*\"?(\w+)", text, re.M)
    if not match:
        sys.exit(f"{run_dir}/config.yaml: no 'stage:' line")
    stage = match.group(1)
    advantage = re.search(r"^ppo:\n(?:[ \t].*\n)*?[ \t]+advantage:\s*\"?(\w+)", text, re.M)
    algorithm = advantage.group(1) if stage == "ppo" and advantage and advantage.group(1) != "gae" else stage
    return stage, algorithm


def series(records, key):
    points = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
    return [p[0] for p in points], [p[1] for p in points]


# Panels per stage: (title, [(record type, key, label), ...]).
PANELS = {
    "pretrain": [("loss (nats/token)", [("train", "loss", "train"), ("eval", "val_loss", "val")])],
    "sft": [
        ("loss on response tokens", [("train", "loss", "train"), ("eval", "val_loss", "val")]),
        ("EOS rate on val prompts", [("eval", "eos_rate", "greedy"), ("eval", "eos_rate_sampled", "sampled T=1")]),
    ],
    "reward": [
        ("pairwise loss", [("train", "loss", "train"), ("eval", "val_loss", "val")]),
        ("pairwise accuracy", [("train", "accuracy", "train"), ("eval", "val_accuracy", "held out")]),
    ],
    "dpo": [
        ("DPO loss", [("train", "loss", "train"), ("eval", "val_loss", "val")]),
        ("pair accuracy (implicit reward)", [("train", "accuracy", "train"), ("eval", "val_accuracy", "held out")]),
    ],
    "ppo": [
        ("score (reward model and/or checker)", [("train", "score_mean", "rollouts"), ("eval", "eval_score", "held out, greedy"),
                                                 ("train", "checker_accuracy", "rollouts right (checker)")]),
        ("KL to the SFT reference (nats/sequence)", [("train", "kl", "kl")]),
        ("value loss", [("train", "value_loss", "critic")]),
        ("seconds per iteration", "phases"),
    ],
}

# The phases of a PPO iteration (metrics time_*), stacked in the order they run.
PHASES = ["generation", "reward", "policy", "reference", "critic", "advantages", "update", "ptx"]


def plot_phases(ax, records):
    steps = [r["step"] for r in records if "time_generation" in r]
    if not steps:
        return
    layers = [(p, [r.get("time_" + p, 0.0) for r in records if "time_generation" in r]) for p in PHASES]
    layers = [(p, v) for p, v in layers if any(x > 0 for x in v)]
    ax.stackplot(steps, *[v for _, v in layers], labels=[p for p, _ in layers], alpha=0.8)


def plot_run(run_dir, out_dir):
    stage, algorithm = read_stage(run_dir)
    metrics = read_metrics(run_dir)
    panels = PANELS.get(stage)
    if panels is None:
        sys.exit(f"{run_dir}: stage '{stage}' has no plot layout (known: {', '.join(PANELS)})")
    if algorithm != stage:  # grpo, rloo: no critic, so no value loss
        panels = [p for p in panels if p[0] != "value loss"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels):
        if lines == "phases":
            plot_phases(ax, metrics.get("train", []))
            lines = []
        for kind, key, label in lines:
            steps, values = series(metrics.get(kind, []), key)
            if steps:
                ax.plot(steps, values, marker="o" if kind == "eval" else None, markersize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("iteration" if stage == "ppo" else "step")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend()
    fig.suptitle(f"{algorithm}: {run_dir}")
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, os.path.basename(os.path.normpath(run_dir)) + ".png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (each with config.yaml and metrics.jsonl)")
    parser.add_argument("--out", required=True, help="directory for the PNGs")
    args = parser.parse_args()
    for run in args.runs:
        for needed in ("config.yaml", "metrics.jsonl"):
            if not os.path.isfile(os.path.join(run, needed)):
                sys.exit(f"{run}: no {needed} (is it a run directory?)")
        print(plot_run(run, args.out))


if __name__ == "__main__":
    main()
