#!/usr/bin/env python3
"""The table of scripts/gpt1_tasks.sh: each task's held-out score fine-tuned from the pre-trained
model and from scratch, the constant baseline, and GPT-1's published number for scale.

    scripts/gpt1_report.py RUNS      # reads RUNS/eval/{pretrained,scratch}-TASK.json, writes RUNS/summary.json
"""
import json
import math
import os
import sys


def num(r, key):
    """r[key] as a float; rlhf writes NaN (a constant prediction's correlation) as null."""
    v = r.get(key)
    return math.nan if v is None else float(v)

# (task, metric, GPT-1's number: Radford et al. 2018, tables 2-4; GLUE test / Story Cloze test)
TASKS = [("sst2", "accuracy", 91.3), ("rte", "accuracy", 56.0), ("stsb", "pearson", 82.0),
         ("story-cloze", "accuracy", 86.5)]


def main():
    runs = sys.argv[1] if len(sys.argv) > 1 else "runs/gpt1-tasks"
    rows, wins, beats = [], 0, 0
    print(f"| task | metric | pre-trained | from scratch | constant baseline | GPT-1 (paper) | held-out rows |")
    print(f"|---|---|---|---|---|---|---|")
    for task, metric, paper in TASKS:
        got = {}
        for start in ("pretrained", "scratch"):
            path = os.path.join(runs, "eval", f"{start}-{task}.json")
            with open(path) as f:
                got[start] = json.loads(f.read().strip().splitlines()[-1])
        pre, scr = got["pretrained"], got["scratch"]
        if metric == "pearson":
            # A constant prediction has no correlation; the baseline to beat is its MSE.
            baseline_text = f"r = 0 (MSE {num(pre, 'mean_mse'):.2f})"
            beat = num(pre, "pearson") > 0 and num(pre, "mse") < num(pre, "mean_mse")
            cell = lambda r: f"{100 * num(r, 'pearson'):.1f} (ρ {100 * num(r, 'spearman'):.1f}, MSE {num(r, 'mse'):.2f})"
        else:
            baseline_text = f"{100 * num(pre, 'majority_accuracy'):.1f} (majority class)"
            beat = num(pre, "accuracy") > num(pre, "majority_accuracy")
            cell = lambda r: f"{100 * num(r, metric):.1f}"
        win = num(pre, metric) > num(scr, metric)  # NaN (no correlation) never wins
        wins += win
        beats += beat
        print(f"| {task} | {metric} | {cell(pre)}{' **' if win else ''} | {cell(scr)} | {baseline_text} | {paper} | {pre['count']} |")
        rows.append({"task": task, "metric": metric, "pretrained": pre, "scratch": scr, "gpt1_paper": paper,
                     "pretrained_wins": win, "beats_baseline": beat})
    summary = {"tasks": rows, "pretrained_wins": wins, "beats_baseline": beats,
               "target_pretraining_helps": wins >= 3, "target_every_task_beats_baseline": beats == len(TASKS)}
    with open(os.path.join(runs, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\n** = pre-trained beats from scratch: {wins} of {len(TASKS)} tasks (target: >= 3); "
          f"pre-trained beats the constant baseline: {beats} of {len(TASKS)} (target: all)")


if __name__ == "__main__":
    main()
