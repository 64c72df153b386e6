"""The file names of a model directory (what ``train`` writes), for processes that never import torch: the
serving master checks the directory before any worker loads it."""

from __future__ import annotations

WEIGHTS_FILE = "model.pt"
META_FILE = "model.json"
