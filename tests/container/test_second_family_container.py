"""The second family in the real image, added the way the README's *Bring your own model* says: its package
mounted at /opt/program/model/tinygrey (what rebuilding with it under model/ would bake in) and named by the
``model_family`` hyperparameter. It trains, prints its own metric lines, and serves its own answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tests.container import serve_harness
from tests.container.mltree import finish, make_tree
from tests.integration.serve_support import load_npy, png_bytes, random_image
from tests.tinygrey.family import write_tiny_dataset
from tests.tinygrey.spec import SPEC
from train import metrics_log

PACKAGE = Path(__file__).resolve().parents[1] / "tinygrey"
INSIDE = "/opt/program/model/tinygrey"
HPS = {"model_family": "model.tinygrey.family:TinyGrey", "hidden": "3", "epochs": "2", "batch_size": "2",
       "image_size": "16", "data_workers": "0", "panels": "1", "validation_fraction": "0.34"}


def test_a_mounted_family_trains_and_serves_through_the_unchanged_image(docker_client, image, tmp_path):
    write_tiny_dataset(tmp_path / "channel", count=6)
    tree = make_tree(tmp_path / "ml", HPS, {"train": tmp_path / "channel"})
    container = docker_client.containers.run(
        image, "train", detach=True, network_mode="none",
        volumes={str(tree.root): {"bind": "/opt/ml", "mode": "rw"}, str(PACKAGE): {"bind": INSIDE, "mode": "ro"}})
    code, logs = finish(container)
    assert code == 0, logs
    assert json.loads((tree.model_dir / "model.json").read_text())["family"] == HPS["model_family"]
    for definition in metrics_log.definitions(SPEC):  # generated from the family's spec
        values = re.findall(definition["Regex"], logs)
        assert len(values) == (0 if definition["Name"].startswith("test:") else 2), (definition, logs)

    served = serve_harness.start(image, tree.model_dir, volumes={PACKAGE: INSIDE}, deadline_s=120)
    try:
        img = random_image(5, 7, seed=4)
        status, _, body = served.request("POST", "/invocations", png_bytes(img),
                                         {"Content-Type": "image/png", "Accept": "application/json"})
        assert status == 200, (body, served.logs())
        doc = json.loads(body)
        assert sorted(doc) == ["grey", "shape"] and doc["shape"] == [5, 7, 1]
        status, _, body = served.request("POST", "/invocations", png_bytes(img),
                                         {"Content-Type": "image/png", "Accept": "application/x-npy"})
        assert status == 200 and load_npy(body).shape == (5, 7, 1)
        # npy carries the exact values, JSON the ones clipped to the spec's output_range and rounded to 1e-4.
        np.testing.assert_allclose(np.clip(load_npy(body), 0, 1), np.array(doc["grey"]), atol=1e-4)
        status, _, body = served.request("POST", "/invocations", json.dumps(img.tolist()).encode() + b"\n",
                                         {"Content-Type": "application/jsonlines"})
        assert status == 200 and sorted(json.loads(body.splitlines()[0])) == ["grey", "shape"]
    finally:
        served.stop()
