"""An idle worker hands the forward's freed heap back to the OS; while busy it does not pay for that."""

import ctypes
import threading
import time
from pathlib import Path

import pytest
import torch

from serve.batching import Batcher
from serve.heap import heap_trimmer
from tests.polling import wait_until


def _anonymous_mib() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Anonymous line in smaps_rollup")


def test_the_trimmer_returns_freed_heap_pages_that_malloc_kept():
    release = heap_trimmer()
    if release is None:
        pytest.skip("this C library has no malloc_trim")
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    chunk, count = 64 << 10, 1600  # 100 MiB in chunks below the mmap threshold: they live in the heap
    chunks = [libc.malloc(chunk) for _ in range(count)]
    for address in chunks:
        ctypes.memset(address, 1, chunk)  # touch every page
    sentinel = libc.malloc(chunk)  # kept: the freed memory is not at the heap's top, so free() keeps it all
    for address in chunks:
        libc.free(address)
    try:
        before = _anonymous_mib()
        release()
        after = _anonymous_mib()
    finally:
        libc.free(sentinel)
    assert before - after > 50, f"anonymous memory {before:.0f} -> {after:.0f} MiB"


def test_there_is_no_trimmer_where_the_c_library_lacks_malloc_trim():
    class Musl:  # no malloc_trim attribute, as ctypes reports a missing symbol
        pass

    assert heap_trimmer(Musl()) is None


def test_the_trimmer_asks_for_no_padding_and_says_whether_memory_was_returned():
    calls = []

    class Glibc:
        def malloc_trim(self, pad):
            calls.append(pad)
            return len(calls) == 1

    release = heap_trimmer(Glibc())
    assert release is not None and release() is True and release() is False
    assert calls == [0, 0]


def _double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_an_idle_inference_thread_runs_the_idle_hook_once_after_start_and_once_after_each_busy_spell():
    events = []
    b = Batcher(lambda x: events.append("pass") or _double(x), on_idle=lambda: events.append("idle"),
                idle_after_s=0.01).start()
    try:
        wait_until(lambda: events == ["idle"], 5, "the hook after start (the model load's garbage)")
        assert float(b.submit([torch.ones(1, 2, 2)], timeout=5)[0][0, 0, 0]) == 2.0
        wait_until(lambda: events.count("idle") == 2, 5, "the hook after the pass")
        b.submit([torch.ones(1, 2, 2)], timeout=5)
        wait_until(lambda: events.count("idle") == 3, 5, "the hook after the second pass")
    finally:
        b.close()
    assert events[:5] == ["idle", "pass", "idle", "pass", "idle"]  # never twice in a row: once per idle spell


def test_a_failing_idle_hook_does_not_stop_inference():
    calls = []

    def broken() -> None:
        calls.append(1)
        raise OSError("no")

    b = Batcher(_double, on_idle=broken, idle_after_s=0.01).start()
    try:
        wait_until(lambda: calls, 5, "the idle hook")
        assert float(b.submit([torch.ones(1, 2, 2)], timeout=5)[0][0, 0, 0]) == 2.0
    finally:
        b.close()


def test_a_workers_batcher_trims_the_heap_once_idle(tmp_path, monkeypatch):
    import serve.batching
    from serve.batching import make_batcher
    from serve.predictor import Predictor
    from serve.settings import settings_from_env
    from tests.integration.serve_support import make_tiny_model_dir

    trims = []
    monkeypatch.setattr(serve.batching, "heap_trimmer", lambda: lambda: trims.append(1) or True)
    monkeypatch.setattr(serve.batching, "IDLE_TRIM_AFTER_S", 0.01)
    predictor = Predictor.from_model_dir(make_tiny_model_dir(tmp_path), device="cpu", cpu_threads=1)
    batcher = make_batcher(predictor, settings_from_env({})).start()
    try:
        wait_until(lambda: trims, 5, "the heap trim of the idle worker")
    finally:
        batcher.close()


def test_the_idle_hook_waits_while_another_lane_is_still_in_a_pass():
    gate, events = threading.Event(), []

    def fwd(x: torch.Tensor) -> torch.Tensor:
        events.append("pass")
        if float(x.flatten()[0]) < 0:
            gate.wait(5)
        events.append("done")
        return x * 2

    b = Batcher(fwd, on_idle=lambda: events.append("idle"), idle_after_s=0.02, lanes=2).start()
    slow = threading.Thread(target=b.submit, args=([torch.full((1,), -1.0)], 10))
    try:
        wait_until(lambda: events == ["idle"], 5, "the hook after start")
        slow.start()
        wait_until(lambda: events == ["idle", "pass"], 5, "one lane inside its long pass")
        time.sleep(0.2)  # ten idle periods of the other lane: it must not trim under the running pass
        assert events == ["idle", "pass"]
        gate.set()
        wait_until(lambda: events[-1] == "idle", 5, "the hook once the pass is over")
    finally:
        gate.set()
        slow.join(5)
        b.close()
    assert events == ["idle", "pass", "done", "idle"]

