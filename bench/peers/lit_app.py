"""The same model behind LitServe (bench peer, not shipped; pinned in bench/requirements.txt).

    MODEL_DIR=... python bench/peers/lit_app.py PORT WORKERS

LitServe's own way to take a file: a multipart upload (field ``file``) decoded in the inference worker;
``workers_per_device`` inference processes with one torch thread each; health at /health.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import litserve as ls
import numpy as np
from fastapi import Response

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for the model code


class NormalsAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        import torch

        from serve.predictor import Predictor

        torch.set_num_threads(1)
        self.predictor = Predictor.from_model_dir(Path(os.environ["MODEL_DIR"]), device="cpu", cpu_threads=1)
        self.predictor.warm_up()

    def decode_request(self, request) -> np.ndarray:
        return np.load(io.BytesIO(request["file"].file.read()), allow_pickle=False)

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predictor.predict([image])[0]

    def encode_response(self, normals: np.ndarray) -> Response:
        out = io.BytesIO()
        np.save(out, normals)
        return Response(content=out.getvalue(), media_type="application/x-npy")


if __name__ == "__main__":
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    server = ls.LitServer(NormalsAPI(api_path="/invocations"), accelerator="cpu", workers_per_device=workers,
                          timeout=120)
    server.run(host="127.0.0.1", port=port, generate_client_file=False)
