"""Hugging Face `tokenizers` as the reference for tokenizer.json files (tests/tokenizer/test_hf_tokenizer.cpp).

  hf_tokenizers.py make DIR           three byte-level BPE tokenizers trained on one small corpus,
                                      each configured as a family's tokenizer.json is:
                                        DIR/qwen2    NFC; Split on Qwen2's regex (digits one by one);
                                                     ByteLevel without regex; <|endoftext|>,
                                                     <|im_start|>, <|im_end|> added past the vocabulary
                                        DIR/llama3   Split on Llama-3's regex (digits in threes);
                                                     ByteLevel without regex; ignore_merges;
                                                     <|begin_of_text|>, <|end_of_text|>, <|eot_id|> added;
                                                     a post-processor putting BOS before each text
                                        DIR/smollm2  Digits (one by one); ByteLevel with GPT-2's regex;
                                                     <|endoftext|>, <|im_start|>, <|im_end|> as the
                                                     first vocabulary entries
                                      with a tokenizer_config.json naming each one's eos_token and
                                      holding a chat template written here in the family's style:
                                        qwen2    ChatML, an empty <think></think> block before the
                                                 final reply when enable_thinking is false (Qwen3)
                                        llama3   BOS, header tokens, every turn trimmed, a system turn
                                                 always, opening with the knowledge-cutoff and date
                                                 lines (Llama-3.1/3.2)
                                        smollm2  ChatML with a default system turn (Qwen2.5, SmolLM2)
  hf_tokenizers.py encode DIR TEXTS   {"ids": [[...] per text], "documents": [[...]]} for the JSON
                                      list TEXTS, special tokens in the text encoded as plain text;
                                      "documents" with the post-processor's (llama3: BOS first), as
                                      JSON on the last line
  hf_tokenizers.py chat CONVS DIR...  transformers' apply_chat_template on each conversation of the
                                      JSON list CONVS (enable_thinking false), with each DIR's
                                      tokenizer: {"ids": [[...]], "prompt": [[...] for the turns
                                      before the last, with the generation prompt]}, one JSON line
                                      per DIR (one Python start for them all)
"""
import json
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
         r"|\s+(?!\S)|\s+")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 12345 steps, isn't it? We'll see, they've said.",
    "Hello world! hello WORLD, Hello, World... 3.14159 and 2026-12-07 at 10:45.",
    "café naïve résumé über straße — “quoted” ‘text’ 日本語のテキストです。 emoji 🤖🚀 ok",
    "def f(x):\n\treturn x * 2  # comment\n\n\n    indented    spaces\r\nwindows line",
] * 50


def build(kind):
    tok = Tokenizer(models.BPE())
    if kind == "qwen2":
        tok.normalizer = normalizers.NFC()
    split = {"qwen2": QWEN2, "llama3": LLAMA3}.get(kind)
    if split:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    first = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] if kind == "smollm2" else []
    trainer = trainers.BpeTrainer(vocab_size=420, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=first, show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    if kind == "qwen2":
        tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        tok.add_tokens(["<think>", "</think>"])  # Qwen3's: added, not special
    if kind == "llama3":
        tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                                "<|end_header_id|>"])
        bos = "<|begin_of_text|>"  # Llama-3's post-processor puts BOS before every text
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                          special_tokens=[(bos, tok.token_to_id(bos))])])
    return tok


# The chat templates, in the style of each family's (the markers and the rules a renderer must
# reproduce), written for this test.
CHATML_THINK = (
    "{%- for m in messages %}"
    "{%- if m['role'] == 'assistant' and loop.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}")
CHATML_SYSTEM = (
    "{%- for m in messages %}"
    "{%- if loop.first and m['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a careful assistant, it\\'s said.<|im_end|>\\n' }}{%- endif %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
LLAMA32 = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = \"\" %}{%- endif %}"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}"
    "{{- system_message }}{{- \"<|eot_id|>\" }}"
    "{%- for m in messages %}"
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


def make(d):
    import os
    eos = {"qwen2": "<|endoftext|>", "llama3": "<|end_of_text|>", "smollm2": "<|endoftext|>"}
    for kind in ("qwen2", "llama3", "smollm2"):
        os.makedirs(f"{d}/{kind}", exist_ok=True)
        path = f"{d}/{kind}/tokenizer.json"
        build(kind).save(path)
        if kind == "llama3":  # the trainer does not keep the flag: set it as Llama-3's file has it
            j = json.load(open(path))
            j["model"]["ignore_merges"] = True
            json.dump(j, open(path, "w"), ensure_ascii=False)
        chat = {"qwen2": CHATML_THINK, "llama3": LLAMA32, "smollm2": CHATML_SYSTEM}
        config = {"eos_token": eos[kind], "chat_template": chat[kind]}
        if kind == "llama3":
            config["bos_token"] = "<|begin_of_text|>"
        json.dump(config, open(f"{d}/{kind}/tokenizer_config.json", "w"))


def encode(d, texts):
    tok = Tokenizer.from_file(f"{d}/tokenizer.json")
    tok.encode_special_tokens = True  # special tokens in user text are plain text, as ours are
    rows = [tok.encode(t, add_special_tokens=False).ids for t in json.loads(texts)]
    docs = [tok.encode(t).ids for t in json.loads(texts)]  # with the post-processor's tokens
    print("\n" + json.dumps({"ids": rows, "documents": docs}))


def chat(convs, dirs):
    from transformers import PreTrainedTokenizerFast
    convs = json.loads(convs)
    print()
    for d in dirs:
        tok = PreTrainedTokenizerFast.from_pretrained(d)

        def ids(turns, generation_prompt):
            out = tok.apply_chat_template(turns, tokenize=True, add_generation_prompt=generation_prompt,
                                          enable_thinking=False)
            return list(out["input_ids"] if hasattr(out, "keys") else out)

        print(json.dumps({"ids": [ids(c, False) for c in convs], "prompt": [ids(c[:-1], True) for c in convs]}))


if __name__ == "__main__":
    {"make": lambda: make(sys.argv[2]), "encode": lambda: encode(sys.argv[2], sys.argv[3]),
     "chat": lambda: chat(sys.argv[2], sys.argv[3:])}[sys.argv[1]]()
