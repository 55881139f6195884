"""Warnings recorded per thread, for code that runs detectors in several threads at once (a fleet actor
running several batches, a ROS node with a multi-threaded executor).

:func:`warnings.catch_warnings` swaps process-wide state (``warnings.showwarning`` and the filter
list) on entry and puts it back on exit: two threads inside it at once record each other's warnings
and may restore the other's state, so warnings go to the wrong rows or are lost. :func:`caught_warnings`
installs one hook for all threads while any is inside it; each warning goes to the list of the thread
that raised it. Warnings of threads outside it are shown as before (they see the ``"always"`` filter
meanwhile, so a repeated one is shown again).
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

_local = threading.local()


class _Hook:
    """The process-wide hook: how many threads are inside :func:`caught_warnings`, and what the
    first of them found installed (put back when the last leaves)."""

    lock = threading.Lock()
    users = 0
    show = None
    filters: list = []

    @classmethod
    def enter(cls) -> None:
        with cls.lock:
            if cls.users == 0:
                cls.show, cls.filters = warnings.showwarning, list(warnings.filters)
                warnings.showwarning = _show
                warnings.simplefilter("always")
            cls.users += 1

    @classmethod
    def leave(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users == 0:
                warnings.showwarning = cls.show
                warnings.filters = cls.filters  # type: ignore[misc]
                warnings._filters_mutated()  # type: ignore[attr-defined]  # as catch_warnings does on exit


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` while the hook is on: into the calling thread's list, if it has one."""
    caught = getattr(_local, "caught", None)
    if caught is not None:
        caught.append(str(message))
    else:
        _Hook.show(message, category, filename, lineno, file, line)


@contextmanager
def caught_warnings() -> Iterator[list[str]]:
    """Within: every warning this thread raises is appended to the yielded list (its message
    text) instead of being shown; thread-safe, unlike :func:`warnings.catch_warnings`; nests."""
    caught: list[str] = []
    outer = getattr(_local, "caught", None)
    _Hook.enter()
    _local.caught = caught
    try:
        yield caught
    finally:
        _local.caught = outer
        _Hook.leave()


__all__ = ["caught_warnings"]
