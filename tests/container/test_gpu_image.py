"""Opt-in smoke test of the GPU variant on a machine without a GPU: BYOC_TEST_GPU_IMAGE=1.

The GPU image carries torch's CUDA build (several GB), so CI builds and tests only the CPU image. Build
the GPU one first (`container/scripts/make-wheelhouse.sh python3 gpu`, then
`container/scripts/build-image.sh byoc:gpu --build-arg VARIANT=gpu`) and point BYOC_GPU_IMAGE at it
(default byoc:gpu). On a host without an NVIDIA GPU both jobs must still work, on the CPU, saying so once.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from tests.container import serve_harness
from tests.container.mltree import TINY_HYPERPARAMETERS, finish, make_tree, start
from tests.container.test_image_contents import IMPORT_EVERYTHING
from tests.integration.serve_support import png_bytes, random_image

pytestmark = pytest.mark.skipif(os.environ.get("BYOC_TEST_GPU_IMAGE") != "1",
                                reason="opt-in: set BYOC_TEST_GPU_IMAGE=1 (and BYOC_GPU_IMAGE) to test the GPU image")
FALLBACK = "no NVIDIA GPU is visible: running on the CPU"


@pytest.fixture(scope="module")
def gpu_image(docker_client) -> str:
    tag = os.environ.get("BYOC_GPU_IMAGE", "byoc:gpu")
    image = docker_client.images.get(tag)
    assert image.labels.get("byoc.variant") == "gpu", f"{tag} is not a GPU build"
    return tag


def test_the_gpu_image_carries_a_cuda_build_and_imports_everything(docker_client, gpu_image) -> None:
    code = IMPORT_EVERYTHING.replace("print(json.dumps({", "print(json.dumps({'cuda': torch.version.cuda, ")
    out = docker_client.containers.run(gpu_image, ["python", "-c", code], entrypoint=[], remove=True)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["cuda"], "torch in the GPU image has no CUDA build"


def test_the_gpu_image_trains_on_the_cpu_and_says_so_once(docker_client, gpu_image, synthetic_channel,
                                                           tmp_path) -> None:
    tree = make_tree(tmp_path / "ml", {**TINY_HYPERPARAMETERS, "epochs": "1"}, {"train": synthetic_channel})
    code, logs = finish(start(docker_client, gpu_image, tree), timeout=300)
    assert code == 0, logs
    assert (tree.model_dir / "model.pt").is_file()
    assert logs.count(FALLBACK) == 1, logs


def test_the_gpu_image_serves_on_the_cpu_and_says_so_once(gpu_image, trained_model_dir) -> None:
    served = serve_harness.start(gpu_image, trained_model_dir)
    try:
        image = random_image(48, 64)
        status, _, body = served.request(
            "POST", "/invocations", png_bytes(image), {"Content-Type": "image/png", "Accept": "application/x-npy"})
        assert status == 200, body[:300]
        answer = np.load(io.BytesIO(body))
        assert answer.shape == (48, 64, 3)
        assert served.logs().count(FALLBACK) == 1, served.logs()
    finally:
        served.stop()
