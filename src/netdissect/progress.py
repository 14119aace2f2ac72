"""Progress of long loops as lines a person can follow: items done, the total, time spent and time left.

tqdm counts and estimates; instead of redrawing a bar, each state goes as one line to a log function (a logger's
``info`` in the stages, so it reaches the job's log file and the console), at most every ``INTERVAL`` seconds and
once at the end. Loops shorter than ``INTERVAL`` print nothing. Lines stay readable in log files, and when
several jobs share one console.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from tqdm import tqdm

INTERVAL = float(os.environ.get("NETDISSECT_PROGRESS_SECONDS", "5"))  # seconds between lines (and before the first)
FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left"


class _Lines:
    """A file for tqdm that hands every state it draws to a log function, as one line (never twice in a row)."""

    def __init__(self, log: Callable[[str], object]) -> None:
        self.log = log
        self.last = ""

    def write(self, text: str) -> None:
        line = text.strip()
        if line and line != self.last:
            self.log(line)
            self.last = line

    def flush(self) -> None:
        pass


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    what: str,
    unit: str,
    log: Callable[[str], object],
    interval: float = INTERVAL,
) -> tqdm:
    """A progress counter that logs a line every ``interval`` seconds (iterate it, or call ``update``).

    Args:
        iterable: the loop's items (None: count with ``update(n)``, and ``close()`` at the end).
        total: number of items (None: ``len(iterable)``).
        what: what is being done, the start of every line.
        unit: what an item is, plural ("steps", "batches", "images").
        log: receives each line.
        interval: seconds between lines.

    Returns:
        The tqdm counter.
    """
    return tqdm(
        iterable,
        total=total,
        desc=what,
        unit=unit,
        file=_Lines(log),
        mininterval=interval,
        miniters=1,
        delay=interval,
        bar_format=FORMAT,
        ascii=True,
    )
