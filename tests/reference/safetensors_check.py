"""Reads a safetensors file written by rlhf (prints each tensor's shape and sum) and writes one
back ("twice" = 2 * w) for rlhf to read. usage: safetensors_check.py OURS THEIRS"""
import sys

import st

tensors, _ = st.load(sys.argv[1])
for name, t in sorted(tensors.items()):
    print(f"{name} {tuple(t.shape)} sum={float(t.double().sum()):.6f}")
st.save(sys.argv[2], {"twice": tensors["w"] * 2})
