#!/usr/bin/env python3
"""Held-out splits of GPT-1's four task files, and the unlabelled text pre-training may read.

    scripts/gpt1_task_data.py --shared ../shared/data/gpt1-tasks --out data/gpt1-tasks [--heldout-cap N] [--train-cap N]

Writes, byte for byte in each file's own format (header kept, GLUE rows untouched):
    OUT/{sst2,rte,stsb}/{train,heldout}.tsv      every 10th data row held out
    OUT/story-cloze/{train,heldout}.csv          every 5th story held out (OpenAI's code: 374 of 1,871)
    OUT/task_text.txt                            the texts of the TRAINING rows only, one per line:
                                                 no label, no held-out row (the books' companion corpus)
The evaluation splits of these datasets are not in ../shared, so the held-out rows stand in for them.
"""
import argparse
import csv
import os
import sys

TASKS = {  # dir -> (file, extension, hold out every Nth data row, text columns)
    "sst2": ("train.tsv", "tsv", 10, ["sentence"]),
    "rte": ("train.tsv", "tsv", 10, ["sentence1", "sentence2"]),
    "stsb": ("train.tsv", "tsv", 10, ["sentence1", "sentence2"]),
    "story-cloze": ("cloze_test_val__spring2016.csv", "csv", 5,
                    ["InputSentence1", "InputSentence2", "InputSentence3", "InputSentence4",
                     "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2"]),
}


def split_lines(path, every):
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header, rows = lines[0], lines[1:]
    train = [r for i, r in enumerate(rows) if i % every != every - 1]
    heldout = [r for i, r in enumerate(rows) if i % every == every - 1]
    return header, train, heldout


def texts_of(header, rows, ext, columns):
    if ext == "tsv":  # GLUE: tabs only, no quoting (the texts hold literal quotes)
        names = header.split("\t")
        idx = [names.index(c) for c in columns]
        for r in rows:
            fields = r.split("\t")
            for i in idx:
                yield fields[i].strip()
    else:
        reader = csv.reader(rows)
        names = next(csv.reader([header]))
        idx = [names.index(c) for c in columns]
        story = []
        for fields in reader:
            yield " ".join(fields[i].strip() for i in idx[:4])  # the story as one paragraph
            for i in idx[4:]:
                story.append(fields[i].strip())
        yield from story


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", required=True, help="../shared/data/gpt1-tasks")
    ap.add_argument("--out", required=True)
    ap.add_argument("--heldout-cap", type=int, default=0, help="keep at most N held-out rows (0 = all)")
    ap.add_argument("--train-cap", type=int, default=0, help="keep at most N training rows (0 = all)")
    args = ap.parse_args()
    corpus = []
    for task, (name, ext, every, columns) in TASKS.items():
        src = os.path.join(args.shared, task, name)
        if not os.path.exists(src):
            sys.exit(f"gpt1_task_data.py: {src} is missing (see ../shared/data/gpt1-tasks/README.md)")
        header, train, heldout = split_lines(src, every)
        if args.heldout_cap:
            heldout = heldout[: args.heldout_cap]
        if args.train_cap:
            train = train[: args.train_cap]
        os.makedirs(os.path.join(args.out, task), exist_ok=True)
        for split, rows in (("train", train), ("heldout", heldout)):
            with open(os.path.join(args.out, task, f"{split}.{ext}"), "w", encoding="utf-8", newline="") as f:
                f.write("\n".join([header] + rows) + "\n")
        corpus.extend(t for t in texts_of(header, train, ext, columns) if t)
        print(f"{task}: {len(train)} train / {len(heldout)} held-out rows")
    with open(os.path.join(args.out, "task_text.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(corpus) + "\n")
    print(f"task_text.txt: {len(corpus)} lines of training-split text")


if __name__ == "__main__":
    main()
