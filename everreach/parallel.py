"""Work on many ad accounts / Pages at once, each account in exactly one worker thread.

Meta limits calls per ad account (and per Page or Instagram account) and per app, and a
sync spends nearly all its time waiting for Meta: accounts are independent, so running
them side by side divides the wall time, while giving each account a single worker keeps
its own request rate where one worker puts it (the client's per-account throttle then
slows that worker alone when the account's usage climbs, see
``everreach.meta.throttle``).

* :func:`interleave` streams the items of several sources (one per account) into one
  iterator, as they arrive, with bounded memory — what a single COPY stream consumes.
* :func:`map_each` calls a function once per item, in parallel, results in item order.

Both stop the remaining work when one source fails and re-raise that failure in the
caller's thread; with ``workers=1`` they run the sources one after another, in order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from everreach.settings import SettingError, get_setting

T = TypeVar("T")
R = TypeVar("R")

_FINISHED = object()

#: Accounts (ad accounts, Pages, Instagram accounts) one sync works on at once.
DEFAULT_PARALLEL_ACCOUNTS = 8
MAX_PARALLEL_ACCOUNTS = 64


def parallel_accounts_setting(env: Mapping[str, str] | None = None) -> int:
    """`EVERREACH_META_PARALLEL_ACCOUNTS` (default 8, 1..64): how many accounts one sync
    reads at once; 1 reads them one after another."""
    raw = get_setting("EVERREACH_META_PARALLEL_ACCOUNTS", env)
    if raw is None:
        return DEFAULT_PARALLEL_ACCOUNTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL_ACCOUNTS:
        raise SettingError(
            "EVERREACH_META_PARALLEL_ACCOUNTS",
            f"{raw!r} is not a number of accounts",
            f"a whole number from 1 to {MAX_PARALLEL_ACCOUNTS}",
        )
    return value


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def interleave(
    sources: Sequence[Callable[[], Iterable[T]]],
    *,
    workers: int,
    batch: int = 500,
    depth: int = 8,
    name: str = "account",
) -> Iterator[T]:
    """Yield the items of every source, running up to ``workers`` sources at once.

    Each source is called and iterated by one thread; its items keep their order, items of
    different sources interleave in batches of up to ``batch``. At most ``depth`` batches
    wait for the consumer (a slow consumer slows the sources, memory stays flat). A source
    that raises stops the others at their next hand-over and the exception is raised here
    after the items delivered before it; when the consumer stops early (or fails), the
    sources are told to stop the same way.
    """
    workers = max(1, min(workers, len(sources) or 1))
    slots: queue.Queue = queue.Queue(maxsize=max(depth, workers))
    stop = threading.Event()
    todo: queue.Queue[int] = queue.Queue()
    for index in range(len(sources)):
        todo.put(index)

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    break
                chunk: list[T] = []
                for item in sources[index]():
                    chunk.append(item)
                    if len(chunk) >= batch:
                        if not put(chunk):
                            return
                        chunk = []
                if chunk and not put(chunk):
                    return
            put(_FINISHED)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            stop_others = put(_Raised(exc))
            if stop_others:
                stop.set()

    threads = [
        threading.Thread(target=work, name=f"{name}-worker-{i}", daemon=True)
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            got = slots.get()
            if got is _FINISHED:
                finished += 1
                continue
            if isinstance(got, _Raised):
                raise got.exc
            yield from got  # type: ignore[misc]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def map_each(
    fn: Callable[[T], R], items: Sequence[T], *, workers: int, name: str = "account"
) -> list[R]:
    """``[fn(item) for item in items]`` with up to ``workers`` calls at once.

    Results come back in the order of ``items``. When a call raises, the calls not yet
    started are cancelled, the running ones are awaited, and the first exception (in the
    order of ``items``) is raised.
    """
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix=name) as pool:
        futures: list[Future[R]] = [pool.submit(fn, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            for future in futures:
                future.cancel()
            wait(futures)
            for future in futures:
                if not future.cancelled() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


__all__ = [
    "DEFAULT_PARALLEL_ACCOUNTS",
    "interleave",
    "map_each",
    "parallel_accounts_setting",
]
