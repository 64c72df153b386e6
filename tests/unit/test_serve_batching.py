import threading

import pytest
import torch

from serve.batching import Batcher
from serve.errors import NotReady, Overloaded
from tests.polling import wait_until


class RecordingForward:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(x.shape[0])
        return x * 2


def test_results_come_back_in_order():
    fwd = RecordingForward()
    b = Batcher(fwd, max_batch_size=1).start()
    try:
        out = b.submit([torch.full((1, 2, 2), float(i)) for i in range(5)], timeout=5)
    finally:
        b.close()
    assert [float(o[0, 0, 0]) for o in out] == [0, 2, 4, 6, 8]
    assert fwd.batches == [1] * 5


def test_same_shape_items_share_a_pass_and_other_shapes_wait_their_turn():
    gate = threading.Event()
    fwd = RecordingForward(gate)
    b = Batcher(fwd, max_batch_size=8, max_delay_s=0.0).start()
    results = {}

    def call(name, tensors):
        results[name] = b.submit(tensors, timeout=10)

    try:
        first = threading.Thread(target=call, args=("first", [torch.zeros(1, 2, 2)]))
        first.start()  # occupies the inference thread until the gate opens
        assert fwd.entered.wait(5), "the first pass never started"
        mixed = [torch.ones(1, 2, 2), torch.ones(1, 4, 4), torch.full((1, 2, 2), 3.0)]
        second = threading.Thread(target=call, args=("mixed", mixed))
        second.start()
        wait_until(lambda: b.queued == 3, 5, "the three mixed items queued behind the first pass")
        gate.set()
        first.join(5)
        second.join(5)
    finally:
        b.close()
    assert fwd.batches == [1, 2, 1]
    assert [tuple(o.shape) for o in results["mixed"]] == [(1, 2, 2), (1, 4, 4), (1, 2, 2)]
    assert float(results["mixed"][2][0, 0, 0]) == 6.0


def test_a_failing_pass_reaches_the_caller():
    def boom(x):
        raise RuntimeError("kaput")

    b = Batcher(boom).start()
    try:
        with pytest.raises(RuntimeError, match="kaput"):
            b.submit([torch.zeros(1)], timeout=5)
    finally:
        b.close()


def test_timeout_is_overloaded_and_skips_abandoned_work():
    gate = threading.Event()
    fwd = RecordingForward(gate)
    b = Batcher(fwd).start()
    try:
        with pytest.raises(Overloaded):
            b.submit([torch.zeros(1), torch.zeros(1)], timeout=0.05)
        gate.set()
    finally:
        b.close()
    assert fwd.batches == [1]  # the second item was cancelled before it ran


def test_submit_after_close_is_not_ready():
    b = Batcher(RecordingForward()).start()
    b.close()
    with pytest.raises(NotReady):
        b.submit([torch.zeros(1)], timeout=1)


def test_small_inputs_share_a_pass_even_when_batching_is_off():
    fwd = RecordingForward()
    b = Batcher(fwd, max_batch_size=1, small_batch_elements=3 * 4 * 4 * 3).start()
    try:
        out = b.submit([torch.full((3, 4, 4), float(i)) for i in range(7)], timeout=5)
        assert [float(o[0, 0, 0]) for o in out] == [0, 2, 4, 6, 8, 10, 12]
        assert fwd.batches == [3, 3, 1]
        assert b.submit([torch.zeros(3, 8, 8)] * 2, timeout=5) and fwd.batches[-2:] == [1, 1]
    finally:
        b.close()


def test_queued_inputs_of_other_shapes_never_kill_the_inference_thread():
    fwd = RecordingForward()
    b = Batcher(fwd, max_batch_size=1, small_batch_elements=10_000).start()
    try:
        mixed = [torch.full((3, 4 + i % 3, 4), float(i)) for i in range(12)]  # shapes interleaved in the queue
        out = b.submit(mixed, timeout=5)
        assert [float(o[0, 0, 0]) for o in out] == [2.0 * i for i in range(12)]
        assert sorted(fwd.batches) == [4, 4, 4]
    finally:
        b.close()


def test_queued_counts_items_waiting_for_the_inference_thread():
    gate = threading.Event()
    fwd = RecordingForward(gate)
    b = Batcher(fwd).start()
    try:
        assert b.queued == 0
        caller = threading.Thread(target=b.submit, args=([torch.zeros(1), torch.zeros(1)], 5))
        caller.start()
        assert fwd.entered.wait(5)
        wait_until(lambda: b.queued == 1, 5, "the second item waiting while the first is predicted")
        gate.set()
        caller.join(5)
        assert b.queued == 0
    finally:
        gate.set()
        b.close()


class TwoAtOnce:
    """A forward pass that only returns once two passes are inside it at the same time (or 5 s passed)."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=5)
        self.threads: set[str] = set()
        self.met = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.threads.add(threading.current_thread().name)
        try:
            self.barrier.wait()
            self.met += 1
        except threading.BrokenBarrierError:
            pass
        return x * 2


def test_two_lanes_run_two_passes_side_by_side_from_one_queue():
    fwd = TwoAtOnce()
    b = Batcher(fwd, max_batch_size=1, lanes=2).start()
    try:
        assert b.lanes == 2
        out = b.submit([torch.full((1, 2, 2), float(i)) for i in range(2)], timeout=10)
    finally:
        b.close()
    assert [float(o[0, 0, 0]) for o in out] == [0, 2]
    assert fwd.met == 2 and fwd.threads == {"inference-0", "inference-1"}


def test_one_lane_never_runs_two_passes_at_once():
    fwd = TwoAtOnce()
    fwd.barrier = threading.Barrier(2, timeout=0.2)
    b = Batcher(fwd, max_batch_size=1, lanes=1).start()
    try:
        b.submit([torch.zeros(1), torch.zeros(1)], timeout=10)
    finally:
        b.close()
    assert fwd.met == 0 and fwd.threads == {"inference-0"}


def test_a_free_lane_takes_the_next_item_while_the_other_is_stuck():
    gate = threading.Event()
    stuck = []

    def fwd(x: torch.Tensor) -> torch.Tensor:
        if float(x.flatten()[0]) < 0 and not stuck:
            stuck.append(threading.current_thread().name)
            gate.wait(5)
        return x * 2

    b = Batcher(fwd, lanes=2).start()
    slow = threading.Thread(target=b.submit, args=([torch.full((1,), -1.0)], 10))
    try:
        slow.start()
        wait_until(lambda: stuck, 5, "the first lane stuck in its pass")
        out = b.submit([torch.ones(1) * i for i in range(4)], timeout=5)  # only the other lane can answer
        assert [float(o[0]) for o in out] == [0, 2, 4, 6]
    finally:
        gate.set()
        slow.join(5)
        b.close()


def test_closing_stops_every_lane_and_fails_work_left_behind():
    b = Batcher(RecordingForward(), lanes=3).start()
    b.close()
    assert not any(t.is_alive() for t in b._threads)
    with pytest.raises(NotReady):
        b.submit([torch.zeros(1)], timeout=1)


def test_lanes_must_be_positive():
    with pytest.raises(ValueError, match="lanes"):
        Batcher(RecordingForward(), lanes=0)
