"""Dynamic batching: one inference thread per worker; concurrent requests share forward passes.

Request threads ``submit`` prepared tensors and block on futures; the inference thread takes the oldest
item, gathers up to ``max_batch_size - 1`` more of the *same shape* that arrive within ``max_delay_s``
(items of other shapes wait their turn, in order), runs one pass and hands each request its slice.
With ``max_batch_size=1`` (the CPU default) it is a plain FIFO that serializes inference, which is what
keeps a worker at one model pass at a time while its HTTP threads stay free for /ping.

With ``small_batch_elements`` set, small inputs are grouped up to that many elements in total whatever
``max_batch_size`` says: a batch of 20,000 1x1 records would otherwise pay a pass's fixed cost per record.

With ``on_idle`` set, the inference thread calls it once whenever it has run no pass for ``idle_after_s``
seconds since its last pass (or since it started: the model load's garbage): the worker then returns the
forward's freed buffers to the OS (``serve.heap``) without paying for it while requests keep coming.
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
from serve.settings import batching_defaults

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
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._forward = forward
        self.max_batch_size = max_batch_size
        self.max_delay_s = max(0.0, max_delay_s)
        self._on_batch = on_batch
        self.small_batch_elements = small_batch_elements
        self._on_idle, self._idle_after_s = on_idle, idle_after_s
        self._worked = True  # the load and warm-up before start() left garbage too
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._pending: deque[_Item] = deque()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._closed = False

    @property
    def queued(self) -> int:
        """Items submitted and not yet taken into a pass (approximate while requests arrive)."""
        return self._queue.qsize() + len(self._pending)

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the queued work; requests submitted later get NotReady."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

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
            # Items not yet started are skipped by the inference thread: no work for a client that left.
            for item in items:
                item.future.cancel()
            raise Overloaded(
                f"prediction took longer than {timeout:g} s (SAGEMAKER_MODEL_SERVER_TIMEOUT); retry later"
            ) from None

    # -- the inference thread --------------------------------------------------------------------------
    def _next(self) -> _Item | None:
        if self._pending:
            return self._pending.popleft()
        if self._on_idle is not None and self._worked:
            try:
                return self._queue.get(timeout=self._idle_after_s)
            except queue.Empty:
                self._idle()
        return self._queue.get()

    def _idle(self) -> None:
        self._worked = False
        try:
            self._on_idle()  # type: ignore[misc]
        except Exception:  # housekeeping: it must never stop the inference thread
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

    def _run(self) -> None:
        while True:
            head = self._next()
            if head is None:
                break
            group = [head]
            try:
                group = [it for it in self._gather(head) if it.future.set_running_or_notify_cancel()]
                if not group:
                    continue
                self._worked = True
                out = self._forward(torch.stack([it.tensor for it in group]))
            except BaseException as exc:  # handed to the waiting requests, which log and answer 500
                # The thread itself must live on: without it every later request of this worker would hang.
                for it in group:
                    if it.future.running() or it.future.set_running_or_notify_cancel():
                        it.future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(group))
            for i, it in enumerate(group):
                it.future.set_result(out[i])
        for item in self._pending:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(NotReady("the server is shutting down"))


def make_batcher(predictor: Predictor, settings: ServeSettings, metrics: ServeMetrics | None = None) -> Batcher:
    """A worker's batcher around ``predictor.forward``, not yet started: sizes from the settings, else the
    device's defaults; each pass's size goes to ``metrics``; an idle spell returns the free heap to the OS."""
    size, delay_ms = batching_defaults(predictor.device_type)
    return Batcher(
        predictor.forward,
        max_batch_size=settings.max_batch_size or size,
        max_delay_s=(settings.max_batch_delay_ms if settings.max_batch_delay_ms is not None else delay_ms) / 1000,
        on_batch=metrics.batch_size.observe if metrics else None,
        small_batch_elements=SMALL_BATCH_ELEMENTS,
        on_idle=heap_trimmer(),
        idle_after_s=IDLE_TRIM_AFTER_S,
    )
