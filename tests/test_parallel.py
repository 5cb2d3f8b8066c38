"""`everreach.parallel`: several accounts' work at once, each account in one thread."""

from __future__ import annotations

import threading
import time

import pytest

from everreach.parallel import interleave, map_each, parallel_accounts_setting
from everreach.settings import SettingError


def _source(name: str, count: int, delay: float = 0.0, seen: dict | None = None):
    def items():
        for i in range(count):
            if seen is not None:
                seen.setdefault(name, set()).add(threading.get_ident())
            if delay:
                time.sleep(delay)
            yield (name, i)

    return items


def test_interleave_yields_every_item_once_keeping_each_sources_order():
    seen: dict = {}
    sources = [_source(f"s{n}", 57, seen=seen) for n in range(6)]
    out = list(interleave(sources, workers=3, batch=10, depth=2))
    assert sorted(out) == sorted((f"s{n}", i) for n in range(6) for i in range(57))
    for n in range(6):
        assert [i for s, i in out if s == f"s{n}"] == list(range(57))
    # one source, one thread
    assert all(len(threads) == 1 for threads in seen.values())


def test_interleave_with_one_worker_is_one_source_after_another():
    out = list(interleave([_source("a", 5), _source("b", 5)], workers=1, batch=2))
    assert out == [("a", i) for i in range(5)] + [("b", i) for i in range(5)]


def test_interleave_runs_sources_side_by_side():
    sources = [_source(f"s{n}", 5, delay=0.02) for n in range(4)]
    started = time.perf_counter()
    assert len(list(interleave(sources, workers=4, batch=1))) == 20
    parallel = time.perf_counter() - started
    started = time.perf_counter()
    assert len(list(interleave(sources, workers=1, batch=1))) == 20
    sequential = time.perf_counter() - started
    assert parallel < sequential / 2


def test_interleave_raises_a_sources_error_and_stops_the_others():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            i += 1
            time.sleep(0.001)
            yield i

    def failing():
        yield 1
        raise RuntimeError("account act_2 failed")

    with pytest.raises(RuntimeError, match="act_2"):
        list(interleave([endless, failing], workers=2, batch=1, depth=2))
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) <= count + 2  # the endless source stopped


def test_interleave_stops_its_sources_when_the_consumer_stops():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            i += 1
            yield i

    stream = interleave([endless, endless], workers=2, batch=5, depth=2)
    assert next(stream) == 1
    stream.close()
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) <= count + 10


def test_map_each_keeps_order_and_runs_in_parallel():
    active = 0
    peak = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return n * n

    assert map_each(work, list(range(8)), workers=4) == [n * n for n in range(8)]
    assert peak == 4


def test_map_each_raises_the_first_error_and_skips_work_not_started():
    started = []

    def work(n: int) -> int:
        started.append(n)
        if n == 1:
            raise ValueError("bad token for account 1")
        time.sleep(0.05)
        return n

    with pytest.raises(ValueError, match="account 1"):
        map_each(work, list(range(20)), workers=2)
    assert len(started) < 20


def test_parallel_accounts_setting_names_the_variable():
    assert parallel_accounts_setting({}) == 8
    assert parallel_accounts_setting({"EVERREACH_META_PARALLEL_ACCOUNTS": " 3 "}) == 3
    for bad in ("0", "65", "many"):
        with pytest.raises(SettingError, match="EVERREACH_META_PARALLEL_ACCOUNTS"):
            parallel_accounts_setting({"EVERREACH_META_PARALLEL_ACCOUNTS": bad})
