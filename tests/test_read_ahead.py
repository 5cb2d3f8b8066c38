"""Read-ahead: order, errors, early stop and bounded memory."""

from __future__ import annotations

import threading
import time

import pytest

from everreach.read_ahead import prefetch, read_ahead


def test_prefetch_keeps_order_and_reraises_after_the_items_before_the_error():
    def items():
        yield from range(7)
        raise RuntimeError("page 3 failed")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for item in prefetch(items(), batch=2, depth=1):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4, 5]  # the last, unfinished batch never reaches the consumer


def test_sources_interleave_but_each_keeps_its_order():
    sources = [lambda k=k: ((k, i) for i in range(50)) for k in range(4)]
    got = list(read_ahead(sources, workers=3, batch=7, depth=2))
    assert sorted(got) == [(k, i) for k in range(4) for i in range(50)]
    for k in range(4):
        assert [i for kk, i in got if kk == k] == list(range(50))


def test_producer_stays_within_depth_and_stops_when_the_consumer_does():
    produced = 0
    stopped = threading.Event()

    def items():
        nonlocal produced
        try:
            for i in range(10_000):
                produced += 1
                yield i
        finally:
            stopped.set()

    stream = prefetch(items(), batch=10, depth=2)
    assert next(stream) == 0
    time.sleep(0.3)
    # One batch handed over, two queued, one being filled: never the whole source.
    assert produced <= 10 * 4 + 1
    stream.close()
    assert stopped.wait(5)
