"""Read ahead of a slow iterator in a background thread, with bounded memory.

The Graph API (or the sandbox) computes the next page while this process parses, shapes
and COPYs the current one: without read-ahead the two sides take turns and each waits for
the other. At most `depth` batches of `batch` items are held, so memory stays flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], *, batch: int = 500, depth: int = 4) -> Iterator[T]:
    """Yield `items` in order while a thread fetches up to `depth` batches ahead.

    An exception in the producer is re-raised here (after the items before it). When the
    consumer stops early, the producer is told to stop at its next hand-over.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
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
            chunk: list[T] = []
            for item in items:
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

    worker = threading.Thread(target=produce, name="ads-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            got = slots.get()
            if got is _DONE:
                return
            if isinstance(got, _Raised):
                raise got.exc
            yield from got  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
