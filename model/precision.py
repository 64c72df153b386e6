"""Precision names, in a torch-free module: the training hyperparameters and the serving environment validate
them in processes that never import torch (the laptop launch CLI, the serving master)."""

from __future__ import annotations

#: auto: bf16 (or fp16) autocast on a GPU, fp32 on CPU; the others force one.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
