"""The progress bar of long jobs: rows done/total, percent, rate, ETA, tokens.

On a terminal, rich draws the bar and redraws it in place (at most ~10 times a
second). When the stream is not a terminal (a log file, CI) it stays quiet unless
``SUTRO_SQL_PROGRESS=1`` asks for it, and then prints a plain line every few
seconds plus a final one, so logs stay readable. ``SUTRO_SQL_PROGRESS=0``
silences it everywhere. The status text (`ProgressBar.render`) is the same in both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from . import environment

TTY_REDRAW_SECONDS = 0.1
PLAIN_LINE_SECONDS = 5.0
BAR_WIDTH = 24


def progress_enabled(stream: TextIO, enabled: bool | None = None) -> bool:
    """``SUTRO_SQL_PROGRESS=0`` silences; else an explicit choice wins; else env ``=1``; else a TTY."""
    forced = environment.get(environment.PROGRESS) or ""
    if forced == "0":
        return False
    if enabled is not None:
        return enabled
    if forced == "1":
        return True
    return _is_tty(stream)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False


class ProgressBar:
    """Progress of `total` rows; feed it cumulative counts with `update`, then `close` it.

    `total` may be None or 0 when unknown: the bar then shows rows and rate only.
    `clock` is injectable so tests can drive time.
    """

    def __init__(
        self,
        total: int | None,
        description: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total or None
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = progress_enabled(self.stream, enabled)
        self.in_place = self.enabled and _is_tty(self.stream)
        self.done = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._clock = clock
        self._first_seen: tuple[float, int] | None = None  # (time, rows done) at the first update
        self._last_draw: float | None = None
        self._closed = False
        self._live: Progress | None = None

    def update(self, done: int, *, input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """Record cumulative progress; draws when enough time has passed since the last draw."""
        if self._first_seen is None:
            self._first_seen = (self._clock(), done)
        self.done = max(self.done, done)
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens
        if not self.enabled or self._closed:
            return
        interval = TTY_REDRAW_SECONDS if self.in_place else PLAIN_LINE_SECONDS
        now = self._clock()
        if self._last_draw is None or now - self._last_draw >= interval:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state (ending the in-place line); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(self._clock(), final=True)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def rate(self) -> float | None:
        """Rows per second since the first update (rows done before attaching do not count);
        None until a row has been done since then."""
        if self._first_seen is None:
            return None
        started, first_done = self._first_seen
        elapsed = self._clock() - started
        if elapsed <= 0 or self.done == first_done:
            return None
        return (self.done - first_done) / elapsed

    def render(self) -> str:
        """The status line (on a terminal, rich draws the bar before it)."""
        parts = [f"{self.description}:" if self.description else ""]
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            parts.append(f"{self.done:,}/{self.total:,} rows ({fraction:.0%})")
        else:
            parts.append(f"{self.done:,} rows")
        rate = self.rate
        if rate is not None:
            parts.append(f"{rate:,.1f} rows/s")
            if self.total and rate > 0 and self.done < self.total:
                parts.append(f"ETA {_clock_text((self.total - self.done) / rate)}")
        if self.input_tokens is not None or self.output_tokens is not None:
            parts.append(f"tokens in {self.input_tokens or 0:,} out {self.output_tokens or 0:,}")
        return " ".join(part for part in parts if part)

    def _draw(self, now: float, *, final: bool = False) -> None:
        self._last_draw = now
        try:
            if self.in_place:
                self._draw_in_place(final)
            else:
                self.stream.write(self.render() + "\n")
                self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must never fail the job
            self.enabled = False

    def _draw_in_place(self, final: bool) -> None:
        """rich's bar and this status text, redrawn on one line; the final draw ends the line."""
        if self._live is None:
            console = Console(file=self.stream, force_terminal=True)
            self._live = Progress(
                BarColumn(bar_width=BAR_WIDTH), TextColumn("{task.description}"), console=console, auto_refresh=False
            )
            self._live.add_task("", total=self.total)
            self._live.start()
        task = self._live.task_ids[0]
        self._live.update(task, completed=self.done, description=self.render())
        self._live.refresh()
        if final:
            self._live.stop()


def _clock_text(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
