"""The real container: a worker that has gone idle gives the memory its predictions left in malloc back."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.container.serve_harness import start, wait_for_workers, workers
from tests.integration.serve_support import npy_bytes, random_image
from tests.polling import wait_until

pytestmark = pytest.mark.container

#: Proof that the predictions did allocate. Measured on the default U-Net with folded BatchNorm: 512 x 512
#: requests grow a worker by ~150 MiB; 256 x 256 ones by only 37-42 MiB, too close to any threshold.
GROWTH = 64 << 10  # KiB
#: Lazily imported modules and caches a first request leaves behind for good.
SLACK = 24 << 10  # KiB


def test_an_idle_worker_returns_to_its_pre_request_memory_after_predicting(image, default_unet_dir):
    s = start(image, default_unet_dir, {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    try:
        [(pid, (idle_rss, _))] = wait_for_workers(s, 1).items()
        body = npy_bytes(random_image(512, 512))
        for _ in range(3):
            status, _, answer = s.request("POST", "/invocations", body,
                                          {"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
            assert status == 200 and np.load(io.BytesIO(answer)).shape == (512, 512, 3)
        peak = workers(s)[pid][1]
        assert peak - idle_rss > GROWTH, f"the predictions grew the worker by {(peak - idle_rss) >> 10} MiB only"
        wait_until(lambda: workers(s)[pid][0] <= idle_rss + SLACK, 30,
                   f"worker RSS back within {SLACK >> 10} MiB of {idle_rss >> 10} MiB "
                   f"(it held {workers(s)[pid][0] >> 10} MiB after the predictions)", interval=0.2)
    finally:
        s.stop()
