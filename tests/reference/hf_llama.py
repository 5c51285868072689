"""Hugging Face transformers as the reference for Llama-family models (`rlhf convert --from-hf`).

  hf_llama.py make DIR          three random models over DIR's vocab.json (262 tokens), every tensor
                                random (norm gains included), so that a wrong mapping cannot pass:
                                  DIR/llama    LlamaForCausalLM: grouped-query attention (4 heads, 2
                                               kv), llama3 rope scaling, untied lm_head; config as
                                               transformers 5 writes it (rope_parameters, dtype)
                                  DIR/llama4x  the same weights, config.json in 4.x's style
                                               (rope_theta and rope_scaling on top, torch_dtype)
                                  DIR/qwen2    Qwen2ForCausalLM: q/k/v biases, tied head, 320
                                               embedding rows, saved in two shards
                                  DIR/qwen3    Qwen3ForCausalLM: q/k norms, head_dim 16 != 32 / 4,
                                               weights stored as bfloat16
  hf_llama.py chat-model TOK OUT a random Qwen2ForCausalLM at transformers' own initialisation (a
                                model one can train from) over TOK's tokenizer.json (hf_tokenizers.py
                                make's qwen2: <|im_start|>, <|im_end|> and a ChatML template), saved
                                to OUT with TOK's files, as a Qwen2.5 chat model's hub directory is:
                                spare embedding rows (448 for 425 ids), a 32k context, eos <|im_end|>
  hf_llama.py logits IDS N V DIR...
                                logits (B, T, V') of each DIR (any of the above, or an export of
                                ours) loaded in fp32, for the JSON batch {"ids": [[...]], "mask":
                                [[...]]} (left padding), and N tokens greedy generate() gives after
                                each row, ids past the tokenizer's V never chosen: {"logits": {DIR:
                                logits}, "greedy": {DIR: [[...] per row]}} as JSON on the last line
  hf_llama.py nll DOCS V DIR... each document of the JSON list DOCS encoded by DIR's tokenizer, cut
                                to the model's max_position_embeddings, and the mean negative
                                log-likelihood of every token after the first, the softmax over the
                                first V logits (the tokenizer's ids; Qwen pads its embedding past
                                them): {DIR: [nll per document]} as JSON on the last line
"""
import json
import shutil
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, \
    Qwen3Config, Qwen3ForCausalLM

transformers.utils.logging.disable_progress_bar()  # stdout/stderr carry only the result


def randomize(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)  # gains near 1, each different
            else:
                p.normal_(0.0, 0.3)
    return model.eval()


def copy_tokenizer(d, sub):
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(f"{d}/{f}", f"{d}/{sub}/{f}")


def make(d):
    vocab = len(json.load(open(f"{d}/vocab.json")))
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                  max_position_embeddings=64, bos_token_id=vocab - 1, eos_token_id=vocab - 1)

    llama = randomize(LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16}, **common)))
    llama.save_pretrained(f"{d}/llama", safe_serialization=True)
    copy_tokenizer(d, "llama")

    shutil.copytree(f"{d}/llama", f"{d}/llama4x")
    cfg = json.load(open(f"{d}/llama4x/config.json"))
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    json.dump(cfg, open(f"{d}/llama4x/config.json", "w"), indent=2)

    qwen2 = randomize(Qwen2ForCausalLM(Qwen2Config(
        vocab_size=320, num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **common)))
    qwen2.save_pretrained(f"{d}/qwen2", safe_serialization=True, max_shard_size="40KB")
    copy_tokenizer(d, "qwen2")

    qwen3 = randomize(Qwen3ForCausalLM(Qwen3Config(
        vocab_size=vocab, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **common)))
    qwen3.to(torch.bfloat16).save_pretrained(f"{d}/qwen3", safe_serialization=True)
    copy_tokenizer(d, "qwen3")


def chat_model(tok, out):
    added = {t["content"]: t["id"] for t in json.load(open(f"{tok}/tokenizer.json"))["added_tokens"]}
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=448, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        bos_token_id=added["<|endoftext|>"], eos_token_id=added["<|im_end|>"]))
    model.save_pretrained(out, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{tok}/{f}", f"{out}/{f}")


def logits(batch, n, v, dirs):
    b = json.loads(batch)
    ids, mask = torch.tensor(b["ids"]), torch.tensor(b["mask"])
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = {"logits": {}, "greedy": {}}
    for d in dirs:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        with torch.no_grad():
            out["logits"][d] = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.tolist()
            spare = list(range(int(v), model.config.vocab_size))  # Qwen's padded rows are no token
            model.generation_config.eos_token_id = None  # N tokens, EOS one of them where it is the argmax
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=int(n), do_sample=False,
                                 suppress_tokens=spare or None, pad_token_id=0)
        out["greedy"][d] = gen[:, ids.shape[1]:].tolist()
    print("\n" + json.dumps(out))  # the last line


def nll(docs, v, dirs):
    from transformers import AutoTokenizer
    out = {}
    for d in dirs:
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        rows = []
        for doc in json.loads(docs):
            ids = torch.tensor([tok(doc)["input_ids"][:model.config.max_position_embeddings]])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1, :int(v)].double(), -1)
            rows.append(-logp.gather(-1, ids[0, 1:].unsqueeze(-1)).mean().item())
        out[d] = rows
    print("\n" + json.dumps(out))  # the last line


if __name__ == "__main__":
    {"make": lambda: make(sys.argv[2]), "logits": lambda: logits(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]),
     "nll": lambda: nll(sys.argv[2], sys.argv[3], sys.argv[4:]),
     "chat-model": lambda: chat_model(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
