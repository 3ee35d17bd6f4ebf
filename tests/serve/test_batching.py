"""The micro-batcher on its own: batches form from concurrent submissions, order is kept."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from osteoscan.serve.batching import MicroBatcher


def test_waiting_inputs_run_together_and_keep_their_rows():
    sizes = []

    def double(inputs):
        sizes.append(len(inputs))
        return np.stack(inputs) * 2

    batcher = MicroBatcher(double, max_batch=4, window_s=0.2)
    futures = batcher.submit([np.full(3, float(i)) for i in range(10)])
    results = [f.result(timeout=10) for f in futures]
    batcher.close()
    assert [float(r[0]) for r in results] == [2.0 * i for i in range(10)]
    assert sizes == [4, 4, 2]
    assert batcher.stats.batches == 3 and batcher.stats.largest == 4


def test_submissions_from_many_threads_share_a_batch():
    sizes = []
    batcher = MicroBatcher(lambda xs: sizes.append(len(xs)) or np.stack(xs), 16, window_s=0.3)
    barrier = threading.Barrier(6)

    def one(i):
        barrier.wait()
        return batcher.submit([np.array([i])])[0].result(timeout=10)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert sum(sizes) == 6 and len(sizes) < 6


def test_a_failing_batch_reaches_every_waiting_request_and_the_worker_lives_on():
    calls = []

    def flaky(inputs):
        calls.append(len(inputs))
        if len(calls) == 1:
            raise ValueError("model exploded")
        return np.stack(inputs)

    batcher = MicroBatcher(flaky, max_batch=8, window_s=0.05)
    with pytest.raises(ValueError, match="exploded"):
        asyncio.run(batcher.run([np.zeros(2), np.ones(2)]))
    assert asyncio.run(batcher.run([np.ones(2)])).shape == (1, 2)
    batcher.close()
