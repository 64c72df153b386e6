"""The file names of a model directory (what ``train`` writes), without torch: the serving master checks the
directory before it imports torch and forks its workers."""

from __future__ import annotations

WEIGHTS_FILE = "model.pt"
META_FILE = "model.json"
