"""Names of the files in a model directory, importable without torch (the serving master checks them)."""

WEIGHTS_FILE = "model.pt"
META_FILE = "model.json"
