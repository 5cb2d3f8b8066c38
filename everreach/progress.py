"""Progress of long work (demo stages, backfill runs, webhook replays): done/total, rows,
rate, elapsed and ETA, printed at most every few seconds.

The output goes to any callable taking one string (a *sink*): `click.echo` or a stderr
printer in the terminal, `context.log.info` inside Dagster (the lines then show in the
run's logs). The clock is injectable so the arithmetic and the rate limit are testable.

    progress = Progress("ad_performance", total=accounts * 4, unit="account×level",
                        sink=context.log.info)
    progress.advance(rows=1234, note="act_1 campaign")   # prints at most every 5 s
    progress.finish()                                     # always prints the last line
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

Sink = Callable[[str], None]

#: Seconds between two printed lines unless the caller says otherwise.
DEFAULT_EVERY_SECONDS = 5.0


def stderr_sink(message: str) -> None:
    """Print one progress line to stderr (flushed: the terminal sees it at once)."""
    print(message, file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m` (rounded to whole seconds / minutes)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def eta_seconds(done: float, total: float | None, elapsed: float) -> float | None:
    """Seconds left at the rate so far (`done` in `elapsed` seconds); None when unknown
    (no total, nothing done yet, no time elapsed). 0 when done ≥ total."""
    if total is None or done <= 0 or elapsed <= 0:
        return None
    if done >= total:
        return 0.0
    return (total - done) * elapsed / done


class Progress:
    """Counts steps (and rows) of one piece of work and reports them to a sink.

    `advance` prints when at least `every` seconds passed since the last printed line
    (the first call prints when `every` seconds passed since the start); `finish` always
    prints. `every=0` prints on every call.
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: str = "steps",
        sink: Sink | None = stderr_sink,
        every: float = DEFAULT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.sink = sink
        self.every = every
        self.clock = clock
        self.done = 0
        self.rows = 0
        self.started = clock()
        self._last_printed = self.started
        self.lines_printed = 0
        # Parallel workers (one per account) advance the same progress.
        self._lock = threading.Lock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def eta(self) -> float | None:
        """Seconds left, or None when it cannot be told yet."""
        return eta_seconds(self.done, self.total, self.elapsed)

    def line(self, note: str = "") -> str:
        """`what: 3/8 unit (38%), 1,200 rows (400 rows/s), elapsed 3s, ETA 5s — note`."""
        elapsed = self.elapsed
        if self.total:
            parts = [
                f"{self.done:,}/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
            ]
        else:
            parts = [f"{self.done:,} {self.unit}"]
        if self.rows:
            rate = f" ({self.rows / elapsed:,.0f} rows/s)" if elapsed > 0 else ""
            parts.append(f"{self.rows:,} rows{rate}")
        parts.append(f"elapsed {format_duration(elapsed)}")
        eta = self.eta()
        if eta is not None and self.total and self.done < self.total:
            parts.append(f"ETA {format_duration(eta)}")
        text = f"{self.what}: " + ", ".join(parts)
        return f"{text} — {note}" if note else text

    def advance(self, steps: int = 1, *, rows: int = 0, note: str = "") -> bool:
        """Count `steps` more done (and `rows`); print if due. Returns whether it printed."""
        with self._lock:
            self.done += steps
            self.rows += rows
            now = self.clock()
            if now - self._last_printed < self.every:
                return False
            self._emit(self.line(note), now)
            return True

    def finish(self, note: str = "") -> str:
        """Print (and return) the final line, whatever the rate limit."""
        with self._lock:
            text = self.line(note)
            self._emit(text, self.clock())
        return text

    def _emit(self, text: str, now: float) -> None:
        self._last_printed = now
        self.lines_printed += 1
        if self.sink is not None:
            self.sink(text)


__all__ = [
    "DEFAULT_EVERY_SECONDS",
    "Progress",
    "Sink",
    "eta_seconds",
    "format_duration",
    "stderr_sink",
]
