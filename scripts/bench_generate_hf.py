#!/usr/bin/env python3
"""transformers' generation speed on the shape of one of our Llama-family presets, random weights:
the baseline beside `rlhf bench generate --preset NAME` (docs/benchmarks.md).

usage (the pip flavour's venv has transformers):
  ~/.cache/rlhf/torch-2.11.0/bin/python scripts/bench_generate_hf.py --preset smollm2-135m \
      --batch-size 16 --new-tokens 128 --prompt-tokens 16 --threads 2

Prints one JSON line: {"engine", "preset", "batch_size", "new_tokens", "seconds", "tokens_per_s"}.
Sampling at temperature 1 with min_new_tokens = max_new_tokens, so every row decodes every token,
as our bench does (no early stop). The shapes are the presets' (src/config/presets.cpp).
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

# layers, query heads, kv heads, width, SwiGLU width, vocabulary, rope theta, RMSNorm eps
SHAPES = {
    "smollm2-135m": (30, 9, 3, 576, 1536, 49152, 1e5, 1e-5),
    "smollm2-360m": (32, 15, 5, 960, 2560, 49152, 1e5, 1e-5),
    "qwen2.5-0.5b": (24, 14, 2, 896, 4864, 151936, 1e6, 1e-6),
}


def model_for(preset):
    layers, heads, kv, width, ffn, vocab, theta, eps = SHAPES[preset]
    common = dict(num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv, hidden_size=width,
                  intermediate_size=ffn, vocab_size=vocab, rope_theta=theta, rms_norm_eps=eps,
                  tie_word_embeddings=True, max_position_embeddings=8192)
    if preset.startswith("qwen2"):
        return Qwen2ForCausalLM(Qwen2Config(**common))  # q/k/v biases
    return LlamaForCausalLM(LlamaConfig(**common))


def bench_arguments(doc, batch_size):
    """The options both benchmarks take: --preset, --batch-size, --threads."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True, choices=sorted(SHAPES))
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def main():
    ap = bench_arguments(__doc__, batch_size=1)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = model_for(args.preset).eval()
    vocab = model.config.vocab_size
    prompts = torch.randint(0, vocab, (args.batch_size, args.prompt_tokens))
    with torch.inference_mode():
        model.generate(prompts, do_sample=True, max_new_tokens=4, min_new_tokens=4, pad_token_id=0)  # warm-up
        start = time.perf_counter()
        out = model.generate(prompts, do_sample=True, max_new_tokens=args.new_tokens,
                             min_new_tokens=args.new_tokens, pad_token_id=0)
        seconds = time.perf_counter() - start
    generated = (out.shape[1] - args.prompt_tokens) * args.batch_size
    print(json.dumps({"engine": "transformers", "preset": args.preset, "batch_size": args.batch_size,
                      "new_tokens": args.new_tokens, "seconds": round(seconds, 3),
                      "tokens_per_s": round(generated / seconds, 2)}))


if __name__ == "__main__":
    main()
