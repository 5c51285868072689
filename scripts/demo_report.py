#!/usr/bin/env python3
"""The demo's closing report: one table over the stages, sample answers, summary.json.

    scripts/demo_report.py runs/demo

Reads what scripts/demo.sh left in the runs directory — eval/<stage>.{greedy,sampled}.json and
.jsonl from `rlhf eval`, and each stage's metrics.jsonl — prints the table and the same three
held-out questions answered by every stage, and writes <runs>/summary.json (what the CI test
checks). Plain python3, no third-party module.
"""
import json
import os
import sys

STAGES = ["pretrain", "sft", "reward", "dpo", "grpo", "ppo"]
TUNED = ["dpo", "grpo", "ppo"]  # the three ways past SFT, each from the SFT model
SAMPLE_QUESTIONS = 3
PPO_TAIL = 10  # GRPO's and PPO's score and KL: the mean over the last iterations, not one noisy batch


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"demo_report: {path}: {e} (did every stage of scripts/demo.sh finish?)")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def latest_step(run_dir):
    state = os.path.join(run_dir, "checkpoints", "latest", "state.json")
    return read_json(state)["step"] if os.path.exists(state) else None


def summarise(runs):
    summary = {}
    for stage in STAGES:
        row = {"checkpoint_step": latest_step(os.path.join(runs, stage))}
        if stage != "reward":
            greedy = read_json(os.path.join(runs, "eval", f"{stage}.greedy.json"))
            sampled = read_json(os.path.join(runs, "eval", f"{stage}.sampled.json"))
            row.update(accuracy_sampled=sampled["accuracy"], accuracy_greedy=greedy["accuracy"],
                       eos_rate=sampled["eos_rate"], eos_rate_greedy=greedy["eos_rate"],
                       answers_sampled=sampled["count"], samples_per_prompt=sampled["samples"])
            if "kl_to_reference" in sampled:  # rlhf eval --reference runs/demo/sft, at T = 1
                row["kl_to_sft"] = sampled["kl_to_reference"]
        metrics = read_jsonl(os.path.join(runs, stage, "metrics.jsonl"))
        if stage == "reward":
            evals = [m for m in metrics if m.get("type") == "eval"]
            row.update(pairwise_accuracy=evals[-1]["val_accuracy"], pairs=evals[-1]["pairs"])
        if stage == "dpo":
            evals = [m for m in metrics if m.get("type") == "eval"]
            row.update(pair_accuracy=evals[-1]["val_accuracy"])
        if stage in ("grpo", "ppo"):
            train = [m for m in metrics if m.get("type") == "train"][-PPO_TAIL:]
            row.update(score_mean=sum(m["score_mean"] for m in train) / len(train),
                       kl=sum(m["kl"] for m in train) / len(train), iterations=row["checkpoint_step"])
        summary[stage] = row
    return summary


def pct(x):
    return "" if x is None else f"{100 * x:.1f}%"


def print_table(s):
    header = ["stage", "gold acc (T=1)", "gold acc (greedy)", "EOS rate", "KL to SFT", "pair acc", "train score"]
    rows = []
    for stage in STAGES:
        r = s[stage]
        rows.append([stage, pct(r.get("accuracy_sampled")), pct(r.get("accuracy_greedy")), pct(r.get("eos_rate")),
                     "" if "kl_to_sft" not in r else f"{r['kl_to_sft']:.2f}",
                     pct(r.get("pairwise_accuracy", r.get("pair_accuracy"))),
                     "" if "score_mean" not in r else f"{r['score_mean']:+.3f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    n = s["sft"]["answers_sampled"]
    print(f"\ngold acc: share of held-out questions answered right ({n} answers sampled at T=1, "
          f"{s['sft']['samples_per_prompt']} per question; greedy: one each). KL to SFT: nats per sampled answer, "
          f"log pi - log pi_SFT at T=1 on those answers. pair acc: held-out ranked pairs ({s['reward']['pairs']}) the "
          f"reward model (or DPO's implicit reward) orders right. train score: mean of the last {PPO_TAIL} iterations' "
          f"rollouts (GRPO: the checker's 0/1; PPO: the normalised reward model).")


def print_checks(s):
    sft, pre, ppo, grpo, dpo = s["sft"], s["pretrain"], s["ppo"], s["grpo"], s["dpo"]
    checks = [
        ("SFT accuracy > pre-trained", sft["accuracy_sampled"] > pre["accuracy_sampled"]),
        ("SFT EOS rate >= 90%", sft["eos_rate"] >= 0.9),
        ("reward model pairwise accuracy >= 90%", s["reward"]["pairwise_accuracy"] >= 0.9),
        ("PPO sampled accuracy >= SFT + 10 points", ppo["accuracy_sampled"] >= sft["accuracy_sampled"] + 0.10),
        ("PPO greedy accuracy >= SFT greedy", ppo["accuracy_greedy"] >= sft["accuracy_greedy"]),
        ("PPO KL finite", ppo["kl"] == ppo["kl"] and abs(ppo["kl"]) != float("inf")),
        ("GRPO sampled accuracy >= SFT + 15 points", grpo["accuracy_sampled"] >= sft["accuracy_sampled"] + 0.15),
        ("GRPO greedy accuracy >= SFT + 15 points", grpo["accuracy_greedy"] >= sft["accuracy_greedy"] + 0.15),
        ("DPO sampled accuracy >= SFT", dpo["accuracy_sampled"] >= sft["accuracy_sampled"]),
        ("DPO greedy accuracy >= SFT", dpo["accuracy_greedy"] >= sft["accuracy_greedy"]),
    ]
    print()
    for name, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")
    return all(ok for _, ok in checks)


def print_samples(runs):
    answers = {stage: read_jsonl(os.path.join(runs, "eval", f"{stage}.greedy.jsonl"))
               for stage in ("pretrain", "sft", *TUNED)}
    print(f"\nThe same {SAMPLE_QUESTIONS} held-out questions, greedy answers:")
    for i in range(min(SAMPLE_QUESTIONS, len(answers["sft"]))):
        q = answers["sft"][i]
        print(f"\nQ: {q['prompt']}   (gold: {q['answer']})")
        for stage, rows in answers.items():
            a = rows[i]
            print(f"  {stage:<8} {'right' if a['correct'] else 'wrong'}  {a['response']!r}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/demo_report.py RUNS_DIR   (e.g. runs/demo)")
    runs = sys.argv[1]
    summary = summarise(runs)
    print_table(summary)
    summary["all_targets_met"] = print_checks(summary)
    print_samples(runs)
    with open(os.path.join(runs, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"\nwrote {os.path.join(runs, 'summary.json')}; curves in {os.path.join(runs, 'plots')}/")


if __name__ == "__main__":
    main()
