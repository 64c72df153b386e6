"""The canonical Flask + gunicorn sync server a user would write for this model (bench peer, not shipped).

    MODEL_DIR=... gunicorn -w 2 -k sync -b 127.0.0.1:PORT --chdir bench/peers sync_app:app

One model per worker, loaded at import (gunicorn imports the app in each worker: no --preload), one torch
thread per worker; /invocations decodes an npy body, runs the same predictor as the image and answers npy.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import torch
from flask import Flask, Response, request

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for the model code

from serve.predictor import Predictor

torch.set_num_threads(1)
predictor = Predictor.from_model_dir(Path(os.environ["MODEL_DIR"]), device="cpu", cpu_threads=1)
predictor.warm_up()
app = Flask(__name__)


@app.get("/ping")
def ping() -> Response:
    return Response(b"", status=200)


@app.post("/invocations")
def invocations() -> Response:
    image = np.load(io.BytesIO(request.get_data()), allow_pickle=False)
    (normals,) = predictor.predict([image])
    out = io.BytesIO()
    np.save(out, normals)
    return Response(out.getvalue(), status=200, content_type="application/x-npy")
