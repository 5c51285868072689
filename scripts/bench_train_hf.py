#!/usr/bin/env python3
"""transformers' training step on the shape of one of our Llama-family presets, random weights:
the baseline beside an `rlhf train` run of the same shape and batch (docs/benchmarks.md).

usage (the pip flavour's venv has transformers):
  ~/.cache/rlhf/torch-2.11.0/bin/python scripts/bench_train_hf.py --preset smollm2-135m \
      --batch-size 4 --block-size 512 --steps 5 --threads 2

One step: forward on random token ids, the causal LM loss, backward, gradient clipping at 1 and
an AdamW step (lr 1e-5, weight decay 0.1), as our stages do; the first step is a warm-up and not
timed. Prints one JSON line: {"engine", "preset", "ms_per_step" (median), "tokens_per_s",
"peak_rss_mib"}.
"""
import json
import resource
import statistics
import time

import torch

from bench_generate_hf import bench_arguments, model_for


def main():
    ap = bench_arguments(__doc__, batch_size=4)
    ap.add_argument("--block-size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = model_for(args.preset).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1)
    vocab = model.config.vocab_size
    times = []
    for step in range(args.steps + 1):
        ids = torch.randint(0, vocab, (args.batch_size, args.block_size))
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step > 0:
            times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1000
    print(json.dumps({"engine": "transformers", "preset": args.preset, "batch_size": args.batch_size,
                      "block_size": args.block_size, "ms_per_step": round(ms, 1),
                      "tokens_per_s": round(args.batch_size * args.block_size / ms * 1000, 1),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
