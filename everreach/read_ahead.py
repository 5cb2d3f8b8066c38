"""Read ahead of slow iterators in background threads, with bounded memory.

The Graph API (or the sandbox) computes the next page while this process parses, shapes
and loads the current one: without read-ahead the two sides take turns and each waits for
the other. Items travel in batches through a bounded queue, so at most ``depth`` batches are
held whatever the producers' speed; an exception in a producer is re-raised in the consumer
(after the items before it), and a consumer that stops early stops the producers at their
next hand-over.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def read_ahead(
    sources: Sequence[Callable[[], Iterable[T]]],
    *,
    workers: int = 1,
    batch: int = 500,
    depth: int = 4,
    name: str = "read-ahead",
) -> Iterator[T]:
    """Yield the items of every source, each source's in order, read by ``workers`` threads.

    Sources are called (and iterated) in the threads, ``workers`` at a time; items of
    different sources interleave as they arrive.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for source in sources:
        todo.put(source)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            while not stop.is_set():
                try:
                    source = todo.get_nowait()
                except queue.Empty:
                    break
                chunk: list[T] = []
                for item in source():
                    chunk.append(item)
                    if len(chunk) >= batch:
                        if not put(chunk):
                            return
                        chunk = []
                if chunk and not put(chunk):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Raised(exc))

    threads = [
        threading.Thread(target=produce, name=name, daemon=True)
        for _ in range(max(1, min(workers, len(sources))))
    ]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            got = slots.get()
            if got is _DONE:
                finished += 1
                continue
            if isinstance(got, _Raised):
                raise got.exc
            yield from got  # type: ignore[misc]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def prefetch(items: Iterable[T], *, batch: int = 500, depth: int = 4) -> Iterator[T]:
    """Yield ``items`` in order while a thread fetches up to ``depth`` batches ahead."""
    return read_ahead([lambda: items], batch=batch, depth=depth, name="prefetch")
