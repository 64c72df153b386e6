"""The real container: a worker that has gone idle gives the memory its predictions left in malloc back."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.container.serve_harness import start, wait_for_workers, workers
from tests.integration.serve_support import npy_bytes, random_image
from tests.polling import wait_until

pytestmark = pytest.mark.container

#: Proof that the predictions did allocate. Measured on the default U-Net with folded BatchNorm and 2 inference
#: threads: 512 x 512 requests grow the worker by ~250 MiB; 256 x 256 ones by far less, too close to any threshold.
GROWTH = 128 << 10  # KiB
#: Lazily imported modules and caches a first request leaves behind for good, and the heap's fragmentation: with
#: buffers up to 32 MiB kept in the heap (container/malloc.py) the trim left 46 MiB of 318 in this container (55-65
#: MiB in process; 15 MiB with glibc's defaults, which fault every pass's buffers in again).
SLACK = 96 << 10  # KiB


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
        print(f"worker RSS: idle {idle_rss >> 10} MiB, peak {peak >> 10}, after the trim {workers(s)[pid][0] >> 10}")
    finally:
        s.stop()
