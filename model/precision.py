"""Precision names, in a torch-free module: the training hyperparameters and the serving environment validate
them without torch (the laptop launch CLI, and the serving master before it imports torch: a bad setting fails
in a fraction of a second, not after the 2 s of importing it)."""

from __future__ import annotations

#: auto: bf16 (or fp16) autocast on a GPU, fp32 on CPU; the others force one.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
