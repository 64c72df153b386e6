"""Serverless inference: the image serves the default-size U-Net within a 3 GB memory limit
(``docker run --memory 3g``, SERVE_ENDPOINT_TYPE=serverless) and passes /ping well inside the 3-minute window.

The container-wide peak (cgroup memory.peak) is printed: it is the figure behind the README's smallest
MinMemoryRequiredInMb for an inference-component copy on CPU.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.container.serve_harness import start, wait_for_ping, workers
from tests.integration.serve_support import png_bytes

pytestmark = pytest.mark.container

LIMIT = 3 << 30


def _gradient(side: int) -> np.ndarray:
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    return np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (side, 1)), np.tile(ramp[:, None], (1, side))],
                    axis=-1).astype(np.uint8)


def test_serverless_serves_the_largest_images_within_3_gb(image, default_unet_dir):
    t0 = time.monotonic()
    s = start(image, default_unet_dir, {"SERVE_ENDPOINT_TYPE": "serverless"}, wait_ready=False,
              mem_limit="3g", memswap_limit="3g")
    try:
        ready_s = time.monotonic() - t0 if wait_for_ping(s, 180) >= 0 else 0.0
        assert len(workers(s)) == 1  # serverless default: one worker
        largest = png_bytes(_gradient(1024))  # SERVE_MAX_IMAGE_PIXELS defaults to 1024 x 1024 here
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: s.request("POST", "/invocations", largest,
                                                         {"Content-Type": "image/png", "Accept": "image/png"}),
                                    range(2)))
        assert [r[0] for r in results] == [200, 200], [r[2][:300] for r in results]
        assert all(len(r[2]) <= 4 * 2**20 for r in results)
        over = s.request("POST", "/invocations", png_bytes(_gradient(1025)), {"Content-Type": "image/png"})
        assert over[0] == 400 and "SERVE_MAX_IMAGE_PIXELS" in over[2].decode()
        s.container.reload()
        assert s.container.status == "running" and not s.container.attrs["State"]["OOMKilled"]
        code, out = s.container.exec_run(["cat", "/sys/fs/cgroup/memory.peak"])
        peak = int(out) if code == 0 else max(hwm for _, hwm in workers(s).values()) * 1024
        print(f"\nserverless: /ping 200 after {ready_s:.1f} s; container memory peak {peak / 2**20:.0f} MiB")
        assert peak < LIMIT
        assert ready_s < 180
    finally:
        s.stop()
