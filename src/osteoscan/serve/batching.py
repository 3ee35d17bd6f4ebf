"""Micro-batching: images from concurrent requests go through the model together.

One worker thread owns the model. It takes the first waiting image, then gathers more until it
has ``max_batch`` or ``window_s`` has passed, runs them as one batch and hands each request its
rows. The event loop only waits on futures, so it stays free while the model runs.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True)
class BatchStats:
    batches: int
    images: int
    largest: int


class MicroBatcher:
    """Run ``run_batch`` (a list of inputs -> an array with one row per input) on batches formed
    from concurrent :meth:`submit` calls."""

    def __init__(
        self,
        run_batch: Callable[[list[np.ndarray]], np.ndarray],
        max_batch: int,
        window_s: float,
    ) -> None:
        self.run_batch, self.max_batch, self.window_s = run_batch, max_batch, window_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._batches = self._images = self._largest = 0

    def start(self) -> None:
        """Start the worker thread (the first :meth:`submit` does it too)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="osteoscan-batcher", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    @property
    def stats(self) -> BatchStats:
        with self._lock:
            return BatchStats(self._batches, self._images, self._largest)

    def submit(self, inputs: Sequence[np.ndarray]) -> list[Future]:
        """One future per input, resolved with its row (thread-safe)."""
        self.start()
        futures = []
        for item in inputs:
            future: Future = Future()
            self._queue.put((item, future))
            futures.append(future)
        return futures

    async def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """The rows for ``inputs`` (N, ...), awaited without blocking the event loop."""
        futures = [asyncio.wrap_future(f) for f in self.submit(inputs)]
        return np.stack(await asyncio.gather(*futures))

    def _gather(self, first) -> tuple[list, bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._gather(first)
            # a request that went away (client closed the connection) cancelled its futures
            batch = [(x, f) for x, f in batch if f.set_running_or_notify_cancel()]
            if not batch:
                continue
            inputs, futures = zip(*batch, strict=True)
            try:
                rows = self.run_batch(list(inputs))
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                log.exception("inference failed on a batch of %d", len(batch))
                for future in futures:
                    future.set_exception(exc)
                continue
            for future, row in zip(futures, rows, strict=True):
                future.set_result(row)
            with self._lock:
                self._batches += 1
                self._images += len(batch)
                self._largest = max(self._largest, len(batch))
