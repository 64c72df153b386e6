"""GPU busy share over a timed window: the driver's utilisation counter sampled on a thread.

``torch.cuda.utilization`` reads NVML's "percent of time a kernel was running" over the driver's last sample
period (1/6 s to 1 s); averaging it over the window gives the share of wall time the GPU had work. On a
machine without CUDA or without NVML's Python bindings the share is None and benches print "n/a".
"""

from __future__ import annotations

import threading

import torch


class BusySampler:
    """``with BusySampler() as busy: ...`` then ``busy.share`` (0..1, or None where it cannot be read)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self._interval = interval_s
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readable = torch.cuda.is_available() and _nvml_readable()

    def __enter__(self) -> BusySampler:
        if self._readable:
            self._thread = threading.Thread(target=self._poll, name="gpu-busy", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            self._samples.append(torch.cuda.utilization())

    @property
    def share(self) -> float | None:
        if not self._samples:
            return None
        return sum(self._samples) / len(self._samples) / 100


def _nvml_readable() -> bool:
    try:
        torch.cuda.utilization()
    except Exception:  # no NVML bindings (pynvml / nvidia-ml-py) or no driver access: report n/a
        return False
    return True


def fmt_share(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"
