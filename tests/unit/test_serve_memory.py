"""The memory budget's parts: the per-worker pixel budget, slicing, and JSON encoding without a float per value."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc

import numpy as np
import pytest

from model.normals.spec import SPEC
from serve.budget import PixelBudget
from serve.codecs import JSON, JSONLINES, NPY, MediaType
from serve.encoding import Output, Writer, encode, json_record_size
from serve.errors import Overloaded
from serve.pipeline import slices
from tests.polling import wait_until

NORMALS = Output.of(SPEC)  # the built-in family's answers: key "normals", HxWx3 in [-1, 1]

def unit_normals(h: int, w: int, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).normal(size=(h, w, 3)).astype(np.float32)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def test_budget_makes_a_request_wait_until_others_give_room_back():
    budget = PixelBudget(100)
    entered = threading.Event()
    with budget.hold(70, time.monotonic() + 1):
        def second() -> None:
            with budget.hold(50, time.monotonic() + 5):
                entered.set()

        t = threading.Thread(target=second)
        t.start()
        wait_until(lambda: budget.waiting == 1, 5, "the second request waiting for room")
        assert not entered.is_set()
        assert budget.used == 70
    t.join(5)
    assert entered.is_set()
    assert budget.used == 0


def test_budget_times_out_with_a_503_naming_the_setting():
    budget = PixelBudget(100)
    with budget.hold(100, time.monotonic() + 1):
        with pytest.raises(Overloaded, match="SERVE_WORKER_MAX_PIXELS"):
            with budget.hold(1, time.monotonic() + 0.05):
                pass
    assert budget.used == 0


def test_budget_serves_waiters_in_arrival_order():
    budget, order = PixelBudget(10), []

    def take(name: str, pixels: int) -> None:
        with budget.hold(pixels, time.monotonic() + 5):
            order.append(name)

    with budget.hold(10, time.monotonic() + 1):
        big = threading.Thread(target=take, args=("big", 10))
        big.start()
        wait_until(lambda: budget.waiting == 1, 5, "the big request waiting for room")
        small = threading.Thread(target=take, args=("small", 1))
        small.start()
        wait_until(lambda: budget.waiting == 2, 5, "the small request waiting behind the big one")
    big.join(5)
    small.join(5)
    assert order == ["big", "small"]  # a stream of small requests cannot starve a large one


def test_slices_keep_order_respect_the_pixel_limit_and_take_a_big_record_alone():
    shapes = np.array([[10, 10], [10, 10], [30, 30], [5, 5], [5, 5], [10, 10]])
    parts = list(slices(shapes, 250))
    assert [list(r) for r in parts] == [[0, 1], [2], [3, 4, 5]]


def test_json_answer_size_is_exact_before_encoding_and_values_round_trip():
    preds = [unit_normals(7, 11), unit_normals(3, 2, 1)]
    for kind, batched in ((JSON, True), (JSON, False), (JSONLINES, True), (NPY, True)):
        use = preds if batched else preds[:1]
        if kind == NPY:
            use = [preds[0], preds[0]]
        body = encode(use, batched, MediaType(kind), None, NORMALS)
        shapes = np.array([p.shape[:2] for p in use])
        assert len(body) == Writer(MediaType(kind), batched, shapes, None, NORMALS).size()
    doc = json.loads(encode(preds[:1], False, MediaType(JSON), None, NORMALS))
    np.testing.assert_allclose(np.array(doc["normals"]), preds[0], atol=5e-5 + 1e-7)
    assert json_record_size(7, 11, NORMALS) == len(encode(preds[:1], False, MediaType(JSON), None, NORMALS))


def test_json_encoding_peak_memory_is_a_small_multiple_of_the_answer():
    pred = unit_normals(512, 512)
    tracemalloc.start()
    try:
        body = encode([pred], False, MediaType(JSON), None, NORMALS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A Python float per value (the old encoder) peaked at ~8x the answer; numpy formatting stays near 1x
    # (the answer, its parts before joining, and one ~10 MB chunk of temporaries).
    assert peak < 2 * len(body) + 16 * 2**20, (peak, len(body))
