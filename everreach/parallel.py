"""Work on many ad accounts / Pages at once, each account in exactly one worker thread.

Meta limits calls per ad account (and per Page or Instagram account) and per app, and a
sync spends nearly all its time waiting for Meta: accounts are independent, so running
them side by side divides the wall time, while giving each account a single worker keeps
its own request rate where one worker puts it (the client's per-account throttle then
slows that worker alone when the account's usage climbs, see ``everreach.meta.throttle``).

:func:`map_each` calls a function once per account, in parallel, results in order; streams
of rows (one source per account into one COPY) go through ``everreach.read_ahead``. The
number of workers is `EVERREACH_META_PARALLEL_ACCOUNTS` (``everreach.meta.settings``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


__all__ = ["map_each"]
