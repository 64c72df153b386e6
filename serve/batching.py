"""Dynamic batching: a worker's inference threads ("lanes") take requests from one queue; concurrent requests
share forward passes.

Request threads ``submit`` prepared tensors and block on futures; a free lane takes the oldest item, gathers up
to ``max_batch_size - 1`` more of the *same shape* that arrive within ``max_delay_s`` (items of other shapes wait
their turn, in order), runs one pass and hands each request its slice. With ``max_batch_size=1`` (the CPU
default) each lane runs one image at a time, and the lanes run their passes side by side: torch releases the GIL
inside its kernels, so two lanes with one torch thread each keep two cores busy from one process. One queue for
all lanes means no lane idles while another has work waiting, which separate worker processes cannot promise
(their connections are spread by the kernel, not by load).

With ``small_batch_elements`` set, small inputs are grouped up to that many elements in total whatever
``max_batch_size`` says: a batch of 20,000 1x1 records would otherwise pay a pass's fixed cost per record.

With ``on_idle`` set, a lane calls it once whenever no lane has run a pass for ``idle_after_s`` seconds (or
since the start: the model load's garbage): the worker then returns the forward's freed buffers to the OS
(``serve.heap``) without paying for it while requests keep coming.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from serve.errors import NotReady, Overloaded
from serve.heap import IDLE_TRIM_AFTER_S, heap_trimmer

if TYPE_CHECKING:
    from serve.metrics import ServeMetrics
    from serve.predictor import Predictor
    from serve.settings import ServeSettings

log = logging.getLogger(__name__)

#: One 3 x 256 x 256 input's worth: the size at which batching stopped paying on the measured CPU.
SMALL_BATCH_ELEMENTS = 3 * 256 * 256


@dataclass(eq=False)  # identity: the pending queue removes items by ``is``, never by comparing tensors
class _Item:
    tensor: torch.Tensor
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    @property
    def elements(self) -> int:
        return self.tensor.numel()


class Batcher:
    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        *,
        max_batch_size: int = 1,
        max_delay_s: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
        small_batch_elements: int = 0,
        on_idle: Callable[[], object] | None = None,
        idle_after_s: float = 1.0,
        lanes: int = 1,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self._forward = forward
        self.max_batch_size = max_batch_size
        self.max_delay_s = max(0.0, max_delay_s)
        self._on_batch = on_batch
        self.small_batch_elements = small_batch_elements
        self._on_idle, self._idle_after_s = on_idle, idle_after_s
        self._worked = True  # the load and warm-up before start() left garbage too
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._pending: deque[_Item] = deque()
        # One lane at a time takes work (the head item and whatever joins its batch); passes run outside it.
        self._take = threading.Lock()
        self._count = threading.Lock()
        self._running = 0  # lanes inside a forward pass
        self._threads = [threading.Thread(target=self._run, name=f"inference-{i}", daemon=True)
                         for i in range(lanes)]
        self._closed = False

    @property
    def queued(self) -> int:
        """Items submitted and not yet taken into a pass (approximate while requests arrive)."""
        return self._queue.qsize() + len(self._pending)

    @property
    def lanes(self) -> int:
        return len(self._threads)

    def start(self) -> Batcher:
        for thread in self._threads:
            thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the queued work; requests submitted later get NotReady."""
        self._closed = True
        self._queue.put(None)  # each lane that sees it puts it back for the next one
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def submit(self, tensors: Sequence[torch.Tensor], timeout: float) -> list[torch.Tensor]:
        """Outputs for ``tensors`` (same order); Overloaded if they are not done within ``timeout`` seconds."""
        if self._closed:
            raise NotReady("the server is shutting down")
        items = [_Item(t) for t in tensors]
        for item in items:
            self._queue.put(item)
        deadline = time.monotonic() + timeout
        try:
            return [item.future.result(timeout=max(0.0, deadline - time.monotonic())) for item in items]
        except FutureTimeout:
            # Items not yet started are skipped by the lanes: no work for a client that left.
            for item in items:
                item.future.cancel()
            raise Overloaded(
                f"prediction took longer than {timeout:g} s (SAGEMAKER_MODEL_SERVER_TIMEOUT); retry later"
            ) from None

    # -- the lanes ---------------------------------------------------------------------------------------
    def _next(self) -> _Item | None:
        if self._pending:
            return self._pending.popleft()
        while self._on_idle is not None and self._worked:
            try:
                return self._queue.get(timeout=self._idle_after_s)
            except queue.Empty:
                if not self._running:  # another lane's pass still needs its buffers: ask again later
                    self._idle()
        return self._queue.get()

    def _idle(self) -> None:
        self._worked = False
        try:
            self._on_idle()  # type: ignore[misc]
        except Exception:  # housekeeping: it must never stop a lane
            log.exception("the idle hook failed")

    def _room(self, group: list[_Item]) -> bool:
        return len(group) < self.max_batch_size or (len(group) + 1) * group[0].elements <= self.small_batch_elements

    def _gather(self, head: _Item) -> list[_Item]:
        group = [head]
        for item in list(self._pending):
            if not self._room(group):
                return group
            if item.key == head.key:
                group.append(item)
                self._pending.remove(item)
        deadline = time.monotonic() + self.max_delay_s
        while self._room(group):
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # closing: finish what we hold, then stop
                self._queue.put(None)
                break
            (group if item.key == head.key else self._pending).append(item)
        return group

    def _take_group(self) -> list[_Item] | None:
        """The next batch to run (possibly empty: all cancelled), or None once the batcher is closing."""
        with self._take:
            head = self._next()
            if head is None:
                self._queue.put(None)  # for the next lane
                for item in self._pending:
                    if item.future.set_running_or_notify_cancel():
                        item.future.set_exception(NotReady("the server is shutting down"))
                self._pending.clear()
                return None
            group = [head]
            try:
                group = [it for it in self._gather(head) if it.future.set_running_or_notify_cancel()]
            except BaseException as exc:
                self._fail(group, exc)
                return []
            if group:
                with self._count:
                    self._running += 1
                self._worked = True
            return group

    @staticmethod
    def _fail(group: list[_Item], exc: BaseException) -> None:
        # Handed to the waiting requests, which log and answer 500; the lane itself lives on: without it
        # every later request of this worker would hang.
        for it in group:
            if it.future.running() or it.future.set_running_or_notify_cancel():
                it.future.set_exception(exc)

    def _run(self) -> None:
        while (group := self._take_group()) is not None:
            if not group:
                continue
            try:
                out = self._forward(torch.stack([it.tensor for it in group]))
            except BaseException as exc:
                self._fail(group, exc)
                continue
            finally:
                with self._count:
                    self._running -= 1
            if self._on_batch is not None:
                self._on_batch(len(group))
            for i, it in enumerate(group):
                it.future.set_result(out[i])


def batching_defaults(device_type: str) -> tuple[int, float]:
    """(max batch size, max delay ms) for a device when the environment does not say.

    Measured on a 2-core CPU (a ~1.9 M-parameter U-Net, 256 x 256 inputs): images/s fell with the batch size for
    every variant tried (eager, 2 threads: 16 / 14.5 / 11 / 10 at batch 1 / 4 / 8 / 16), and TorchServe with
    dynamic batching (8, 10 ms) reached 0.60-0.69 of the in-process best against 0.86 without, so CPU does not
    batch. GPUs gain throughput from batches; a few milliseconds of waiting is cheap there.
    """
    return (8, 5.0) if device_type == "cuda" else (1, 0.0)


def make_batcher(predictor: Predictor, settings: ServeSettings, metrics: ServeMetrics | None = None,
                 lanes: int = 1) -> Batcher:
    """A worker's batcher around ``predictor.forward`` with ``lanes`` inference threads, not yet started: sizes
    from the settings, else the device's defaults; each pass's size goes to ``metrics``; an idle spell returns
    the free heap to the OS."""
    size, delay_ms = batching_defaults(predictor.device_type)
    return Batcher(
        predictor.forward,
        max_batch_size=settings.max_batch_size or size,
        max_delay_s=(settings.max_batch_delay_ms if settings.max_batch_delay_ms is not None else delay_ms) / 1000,
        on_batch=metrics.batch_size.observe if metrics else None,
        small_batch_elements=SMALL_BATCH_ELEMENTS,
        on_idle=heap_trimmer(),
        idle_after_s=IDLE_TRIM_AFTER_S,
        lanes=lanes,
    )
